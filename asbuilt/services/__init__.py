"""The local stack: the embedded TimescaleDB cluster, the embedded Kafka-protocol broker, and the
supervisor that starts them in dependency order, checks their health and stops them again."""
