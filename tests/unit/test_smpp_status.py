from smsgw.smpp.status import CommandStatus as S


def test_values_match_spec() -> None:
    assert S.ESME_ROK.value == 0
    assert S.ESME_RINVCMDLEN.value == 0x02
    assert S.ESME_RINVBNDSTS.value == 0x04
    assert S.ESME_RTHROTTLED.value == 0x58
    assert S.ESME_RX_T_APPN.value == 0x64
    assert S.ESME_RINVOPTPARSTREAM.value == 0xC0
    assert S.ESME_RINVDCS.value == 0x104


def test_retriable_set() -> None:
    assert {s for s in S if s.retriable} == {
        S.ESME_RTHROTTLED,
        S.ESME_RMSGQFUL,
        S.ESME_RSYSERR,
        S.ESME_RX_T_APPN,
    }
    assert not S.ESME_RINVPASWD.retriable


def test_is_ok_and_description() -> None:
    assert S.ESME_ROK.is_ok
    assert not S.ESME_RSYSERR.is_ok
    assert "Throttling" in S.ESME_RTHROTTLED.description
    assert all(s.description for s in S)


def test_for_code_known_is_the_member() -> None:
    assert S.for_code(0x58) is S.ESME_RTHROTTLED


def test_for_code_vendor_code_does_not_raise() -> None:
    vendor = S.for_code(0x400)
    assert isinstance(vendor, S)
    assert vendor == 0x400
    assert int(vendor) == 0x400
    assert not vendor.is_known
    assert not vendor.is_ok
    assert not vendor.retriable
    assert "0x00000400" in vendor.description
    assert vendor not in list(S)  # pseudo-members are not listed or cached


def test_for_code_reserved_gap() -> None:
    assert S.for_code(0x09).name == "UNKNOWN_0x00000009"


def test_out_of_range_still_raises() -> None:
    try:
        S.for_code(-1)
    except ValueError:
        pass
    else:
        raise AssertionError("negative status accepted")
