"""Several gateway nodes on one Kafka cluster: who is there (``membership``) and how a
request reaches the node that holds its consumer instance (``forwarding``)."""
