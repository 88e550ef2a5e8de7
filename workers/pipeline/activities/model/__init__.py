"""The model stage: a Triton-vLLM adapter, the resume rule, the token sink, metrics and the activity itself."""
