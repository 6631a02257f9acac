"""Background training: a queue of model versions (their status is the job state) and the worker that runs them."""
