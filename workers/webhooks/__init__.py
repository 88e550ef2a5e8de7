"""Webhooks on terminal jobs (Standard Webhooks): a dispatcher starts one delivery workflow per endpoint and
ending, whose id can never run twice; the workflow retries on the spec's schedule for about three days."""
