"""One node's composition: the SMPP listener (``smsgw.server``) and the Kafka stages
(``smsgw.pipeline``) of one process, wired together.

It sits above both, so neither of them imports the other (docs/ARCHITECTURE.md, "Layers").
"""
