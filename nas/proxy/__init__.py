"""What search and fidelity both drive: the training context and trainer factory of proxies
(:mod:`nas.proxy.context`), zero-cost scores of untrained networks (:mod:`nas.proxy.zero_cost`)
and rank agreement between a cheap score and a reference (:mod:`nas.proxy.ranking`).

Below :mod:`nas.search` and :mod:`nas.fidelity`, which never import each other.
"""
