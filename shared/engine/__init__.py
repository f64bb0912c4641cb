"""The provisioning engine: idempotent steps (observe, compare, act, record) and the runner that
advances a request through them, resumably, with its state in Table Storage."""
