"""Where studies live and what they hold, shared by every driver of a study.

:mod:`nas.study.address` (a study's URL and name, parsed once), :mod:`nas.study.storage`
(SQLite and PostgreSQL through SQLAlchemy, retries, heartbeats, the set-up lock),
:mod:`nas.study.protocol` (the settings a study records and gives back),
:mod:`nas.study.record` (the keys of a trial's record, and a typed reader),
:mod:`nas.study.cleanup` (failing stale and interrupted trials) and :mod:`nas.study._optuna`
(the one module that touches Optuna's private API).
"""
