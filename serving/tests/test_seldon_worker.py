"""The v1 wrapper's request framing (``kfops_serving.seldon_worker.parse_head``): what is refused before gunicorn's
parser or seldon-core's Flask app sees a request. The same shapes go over real sockets in tests/serving's corpus."""

from __future__ import annotations

import pytest

pytest.importorskip("gunicorn")

from kfops_serving.seldon_worker import Refused, parse_head

pytestmark = pytest.mark.unit

MAX_BODY = 1024
LINE = b"POST /api/v1.0/predictions HTTP/1.1\r\nHost: 127.0.0.1"


def head(*fields: str) -> bytes:
    return b"\r\n".join([LINE, *(f.encode("latin-1") for f in fields)])


def refusal(raw: bytes) -> Refused:
    with pytest.raises(Refused) as caught:
        parse_head(raw, MAX_BODY)
    return caught.value


def test_a_plain_json_request_is_framed_by_its_length() -> None:
    assert parse_head(head("Content-Type: application/json", "Content-Length: 12"), MAX_BODY) == (12, False, False)


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "Multipart/Form-Data;boundary=x",
                                          "multipart/mixed; boundary=x", " multipart/related"])
def test_multipart_bodies_are_refused_before_flask_parses_them(content_type: str) -> None:
    refused = refusal(head(f"Content-Type: {content_type}", "Content-Length: 10"))
    assert refused.status == 415
    assert "application/json" in refused.info


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded",
                                          "application/json; charset=utf-8"])
def test_json_and_form_fields_are_still_accepted(content_type: str) -> None:
    assert parse_head(head(f"Content-Type: {content_type}", "Content-Length: 3"), MAX_BODY)[0] == 3


@pytest.mark.parametrize("fields", [
    ("Content-Length: 5, 5",),
    ("Content-Length: 5,5",),
    ("Content-Length: 5", "Content-Length: 5"),
    ("Content-Length: 5", "Content-Length: 6"),
    ("Content-Length: 5, 6",),
    ("Content-Length: +5",),
    ("Content-Length: ",),
])
def test_a_content_length_list_or_repeat_is_a_400(fields: tuple[str, ...]) -> None:
    refused = refusal(head(*fields))
    assert refused.status == 400
    assert "Content-Length" in refused.info


@pytest.mark.parametrize(("fields", "needle"), [
    (("Content-Length: 5", "Transfer-Encoding: chunked"), "both"),
    (("Transfer-Encoding: chunked", "Content-Length: 5"), "both"),
    (("Transfer-Encoding: gzip, chunked",), "chunked"),
    (("Transfer-Encoding: chunked, gzip",), "chunked"),
    (("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), "chunked"),
    (("Transfer-Encoding: xchunked",), "chunked"),
    (("Transfer-Encoding : chunked",), "header field"),
    (("Transfer-Encoding:\x0bchunked",), "control"),
])
def test_request_smuggling_shapes_are_a_400(fields: tuple[str, ...], needle: str) -> None:
    refused = refusal(head(*fields))
    assert refused.status == 400
    assert needle in refused.info


def test_transfer_encoding_on_http_1_0_is_a_400() -> None:
    raw = b"POST /api/v1.0/predictions HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked"
    assert refusal(raw).status == 400


def test_chunked_alone_is_accepted() -> None:
    assert parse_head(head("Transfer-Encoding: chunked"), MAX_BODY) == (None, True, False)
