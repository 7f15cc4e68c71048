"""studiohub.units: memory and CPU quantities, parsed and printed one way everywhere.

Memory follows JupyterHub's ByteSpecification (binary multiples: ``4G`` = ``4GiB`` =
4·1024³ bytes); Kubernetes gets the same integers as exact quantities (``4Gi``).
"""

from __future__ import annotations

import pytest

from studiohub.units import QuantityError, format_cpus, format_memory, kube_memory, parse_memory

KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(("text", "size"), [
    ("4G", 4 * GIB), ("4GiB", 4 * GIB), ("4Gi", 4 * GIB), ("4gib", 4 * GIB), ("4GB", 4 * GIB),
    (" 4 G ", 4 * GIB), ("512M", 512 * MIB), ("512MiB", 512 * MIB), ("1.5G", 3 * GIB // 2),
    ("64K", 64 * KIB), ("2T", 2 * TIB), ("4TiB", 4 * TIB), ("1024", 1024), ("1024B", 1024),
])
def test_memory_text_is_binary_multiples(text: str, size: int) -> None:
    assert parse_memory(text) == size


def test_numbers_are_bytes() -> None:
    assert parse_memory(4 * GIB) == 4 * GIB
    assert parse_memory(1536.9) == 1536  # whole bytes


@pytest.mark.parametrize(("value", "message"), [
    ("", "'' is not a memory size: use bytes or a number with K, M, G or T"),
    ("4X", "'4X' is not a memory size: use bytes or a number with K, M, G or T "
           "(binary multiples, e.g. 4G or 4GiB)"),
    ("four gigs", "'four gigs' is not a memory size"),
    ("-4G", "'-4G' is not a memory size"),
    ("4 G B i", "'4 G B i' is not a memory size"),
    ("0G", "'0G' is not a positive memory size"),
    (0, "0 is not a positive memory size"),
    (-1, "-1 is not a positive memory size"),
    (True, "True is not a memory size"),
])
def test_bad_memory_is_refused_saying_what_is_accepted(value: object, message: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse_memory(value)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)  # callers that catch ValueError see it


@pytest.mark.parametrize(("size", "text"), [
    (4 * GIB, "4 GiB"), (512 * MIB, "512 MiB"), (3 * GIB // 2, "1.5 GiB"), (2 * TIB, "2 TiB"),
    (64 * KIB, "64 KiB"), (100, "100 B"),
])
def test_memory_is_printed_as_labels_print_it(size: int, text: str) -> None:
    assert format_memory(size) == text


@pytest.mark.parametrize(("size", "quantity"), [
    (4 * GIB, "4Gi"), (512 * MIB, "512Mi"), (3 * GIB // 2, "1536Mi"), (2 * TIB, "2Ti"),
    (64 * KIB, "64Ki"), (1000, "1000"), (4 * GIB + 1, str(4 * GIB + 1)),
])
def test_kubernetes_quantities_are_exact(size: int, quantity: str) -> None:
    assert kube_memory(size) == quantity


@pytest.mark.parametrize("text", ["4G", "4GiB", "512M", "1.5G", "16GiB", "2T"])
def test_local_and_kubernetes_limits_are_the_same_bytes(text: str) -> None:
    """What the local cgroup gets and what a pod asks for are one number."""
    quantity = kube_memory(parse_memory(text))
    assert parse_memory(quantity) == parse_memory(text)
    assert quantity.endswith(("Ki", "Mi", "Gi", "Ti"))


def test_cpus_print_as_vcpus() -> None:
    assert format_cpus(2) == "2 vCPU"
    assert format_cpus(0.5) == "0.5 vCPU"
    assert format_cpus(1.0) == "1 vCPU"
