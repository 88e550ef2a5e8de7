"""`jobstream bench`: the price of durability, measured next to a baseline in the same run.

One module per figure (submit, ttft, per_token, fanout, streams, throughput, writes), a runner that runs them in
order against the local stack, and a report that writes JSON, a markdown table and PNG plots. A figure too big for
one module keeps its method and run there and its parts beside it (fanout: fanout_level, fanout_table; scale_out:
bridge_replicas); the fan-out figures share stream_waves, open_files and pinning.
"""
