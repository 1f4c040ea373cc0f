"""registered_delivery towards the provider follows its request_receipts setting (issue 12
item 7)."""

from __future__ import annotations

import pytest

from smsgw.pipeline.connector import submit_fields
from tests.helpers.messages import accepted_message


@pytest.mark.parametrize("customer", [0, 1, 2, 0x11])
def test_always_asks_for_a_receipt_whatever_the_customer_asked(customer: int) -> None:
    fields, _ = submit_fields(accepted_message("1", registered_delivery=customer), "always")
    assert fields["registered_delivery"] == 1


@pytest.mark.parametrize("customer", [0, 1, 2, 0x11])
def test_as_customer_passes_the_customers_flags_on(customer: int) -> None:
    fields, _ = submit_fields(accepted_message("1", registered_delivery=customer), "as-customer")
    assert fields["registered_delivery"] == customer


def test_the_default_is_always() -> None:
    fields, _ = submit_fields(accepted_message("1", registered_delivery=0))
    assert fields["registered_delivery"] == 1
