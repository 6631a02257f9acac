"""Evaluation: metrics from predicted probabilities, the evaluation report and its confusion-matrix picture.

``report.build_report`` / ``report.write_report`` work from probabilities alone (the training runner
calls them with the validation probabilities it already has); ``evaluate.evaluate_model`` runs a
saved model over a dataset first.
"""
