"""Tasks: what differs between kinds of view (see ``tasks.base``). Importing this package registers them."""

from visiontrain.tasks.base import HeadTask, Task, get_task, output_activation, register_task, task_names
from visiontrain.tasks import classification as _classification  # noqa: F401  (registers)
from visiontrain.tasks import tagging as _tagging  # noqa: F401  (registers)
from visiontrain.tasks import detection as _detection  # noqa: F401  (registers)

__all__ = ["HeadTask", "Task", "get_task", "output_activation", "register_task", "task_names"]
