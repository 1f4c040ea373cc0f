"""smsgw: a horizontally scalable SMPP 3.4 SMS gateway.

`smsgw` (this folder, src/) is the gateway library and knows nothing of Ray;
`smsgw.actors` wires it into Ray; `smsgw.cluster` starts the infrastructure.
"""

__version__ = "0.1.0"
