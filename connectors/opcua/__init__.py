"""OPC UA connector: subscriber, event mapping, and the durable spool → Kafka publisher."""
