"""visiontrain: train, evaluate, compare and serve computer-vision models without writing code.

The Python API mirrors the CLI: ``visiontrain.train``, ``visiontrain.evaluate``, ``visiontrain.predict``
and ``visiontrain.export_onnx`` (imported lazily so that ``import visiontrain`` stays cheap for the web
server and the CLI's help). No submodule shares a name with these functions: importing a submodule
sets it as an attribute of the package, which would shadow the function of the same name.
"""

__version__ = "0.1.0"

__all__ = ["train", "evaluate", "predict", "export_onnx", "TrainingSettings", "__version__"]

_ENGINE_FUNCTIONS = frozenset({"train", "evaluate", "predict", "export_onnx"})


def __getattr__(name: str):
    if name in _ENGINE_FUNCTIONS:
        from visiontrain import engine

        function = getattr(engine, name)
        globals()[name] = function  # later look-ups find it directly
        return function
    if name == "TrainingSettings":
        from visiontrain.settings import TrainingSettings

        return TrainingSettings
    raise AttributeError(name)
