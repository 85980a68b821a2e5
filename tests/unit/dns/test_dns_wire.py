"""`wire.safe_query`: what may reach dnslib, which follows compression pointers by recursion."""

from __future__ import annotations

import struct

from dnslib import EDNS0, RR, DNSRecord

from operators.dns.wire import safe_query

HEADER = struct.pack("!HHHHHH", 8, 0x0100, 1, 0, 0, 0)


def test_a_pointer_in_a_question_is_refused() -> None:
    assert not safe_query(HEADER + b"\xc0\x0c" + struct.pack("!HH", 1, 1))  # a pointer to itself: a loop
    assert not safe_query(HEADER + b"\x01a\xc0\x0c" + struct.pack("!HH", 1, 1))  # after a label


def test_plain_questions_with_or_without_edns_pass() -> None:
    assert safe_query(DNSRecord.question("web.default.svc.cluster.local").pack())
    with_opt = DNSRecord.question("example.com")
    with_opt.add_ar(EDNS0(udp_len=1232))
    assert safe_query(with_opt.pack())


def test_records_a_query_never_has_are_refused() -> None:
    answered = DNSRecord.question("a.example").replyZone("a.example. 60 IN A 10.0.0.1")
    assert not safe_query(answered.pack())
    extra = DNSRecord.question("a.example")
    extra.add_ar(RR.fromZone("b.example. 60 IN CNAME a.example.")[0])
    assert not safe_query(extra.pack())


def test_a_name_running_past_the_end_is_refused() -> None:
    assert not safe_query(HEADER + b"\x05ab")
