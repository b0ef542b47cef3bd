"""The historian flow: every contract event into its raw hypertable (:mod:`.flow`)."""
