"""The Kafka side of the data plane: producing with proof, consuming with offsets."""
