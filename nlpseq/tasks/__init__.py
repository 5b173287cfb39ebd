"""Tasks wire data, model, loss, metric and prediction for one problem, through the contract written in
:mod:`nlpseq.contract`: each class implements ``TrainingTask`` (plus ``from_config(cfg)`` and
``from_state(cfg, state)``) and its ``predictor(model)`` returns a ``Predictor``. A new task adds its module here
and its config presets; the trainer and the scripts stay as they are.
"""

from nlpseq.tasks.forecast import ForecastTask
from nlpseq.tasks.memory import MemoryTask
from nlpseq.tasks.ner import NerTask
from nlpseq.tasks.sentiment import SentimentTask
from nlpseq.tasks.translation import TranslationTask

TASKS = {"ner": NerTask, "sentiment": SentimentTask, "translation": TranslationTask,
         "forecast": ForecastTask, "memory": MemoryTask}
