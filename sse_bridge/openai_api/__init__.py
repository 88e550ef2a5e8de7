"""The OpenAI-compatible surface on the bridge: the Responses API and Chat Completions over jobstream jobs, so the
official `openai` SDKs are clients of a durable backend. A response is a job (its id is the job's id under
another prefix); its stream is the job's story, replayed from the events topic and numbered as a pure function
of it, so every replay from any replica is identical."""
