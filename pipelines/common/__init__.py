"""What every flow uses: read events (:mod:`.source`), write rows (:mod:`.sink`), run as a
process with recovery and metrics (:mod:`.runner`, :mod:`.metrics`)."""
