"""How well cheap scores rank architectures the way full training does.

:mod:`nas.fidelity.zero_cost` scores an untrained network from one batch;
:mod:`nas.fidelity.ranking` compares rankings (Kendall's tau, Spearman's rho, bootstrap
intervals); :mod:`nas.fidelity.panel` trains a panel of candidates on a ladder of proxy
fidelities and a reference, in a study database (``nas fidelity``).
"""
