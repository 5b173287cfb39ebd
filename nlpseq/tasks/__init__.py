"""Tasks wire data, model, loss, metric and prediction for one problem. The trainer needs only:

``from_config(cfg)``, ``from_state(cfg, state)``, ``state()``, ``build_model()``, ``train_batches(epoch)``,
``loss(model, batch)``, ``validate(model) -> {metric: value}``, ``metric`` (higher is better unless it is
``"loss"``) and ``predictor(model)``.
"""

from nlpseq.tasks.ner import NerTask
from nlpseq.tasks.sentiment import SentimentTask
from nlpseq.tasks.translation import TranslationTask

TASKS = {"ner": NerTask, "sentiment": SentimentTask, "translation": TranslationTask}
