"""Real time, measured (PROTOCOL section 10): the replay split's streams replayed step by
step, each device holding the head of its last request, and the request policies that
decide, on the device, when to ask the cloud again.

- :mod:`.streams`: the replayed clicks as (device, step) windows and candidate sets;
- :mod:`.stale`: every step scored with every head a device could hold then (all devices'
  step k in one pass), so that any policy's outcome is a lookup;
- :mod:`.policies`: always, never, every-k, random, drift and learned, one simulation for
  all of them, each threshold set by a request budget;
- :mod:`.learned`: the learned policy, a small on-device model trained on the train period;
- :mod:`.evaluate`: one method's replay end to end, its table rows and costs;
- :mod:`.report`: the table, the plot of AUC against request rate and the MLflow metrics.
"""
