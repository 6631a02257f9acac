"""visiontrain: train, evaluate, compare and serve computer-vision models without writing code.

The Python API mirrors the CLI: ``visiontrain.train``, ``visiontrain.evaluate``, ``visiontrain.predict``
(imported lazily so that ``import visiontrain`` stays cheap for the web server and the CLI's help).
"""

__version__ = "0.1.0"

__all__ = ["train", "evaluate", "predict", "TrainingSettings", "__version__"]


def __getattr__(name: str):
    if name in {"train", "evaluate", "predict"}:
        from visiontrain import engine

        return getattr(engine, name)
    if name == "TrainingSettings":
        from visiontrain.settings import TrainingSettings

        return TrainingSettings
    raise AttributeError(name)
