"""How well cheap proxies rank architectures the way full training does (``nas fidelity``).

:mod:`nas.fidelity.ladder` declares proxy fidelities; :mod:`nas.fidelity.panel` trains a
panel of candidates on a ladder of them and a reference, in a study database, and compares
the rankings with :mod:`nas.proxy.ranking` (zero-cost scores: :mod:`nas.proxy.zero_cost`).
"""
