"""The balancer's pure half: HAProxy's configuration for a routing state (canary weights,
header routing, strict names and paths), checked by HAProxy itself where it is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from studiohub.serving.balancer import (
    MAX_WEIGHT,
    BalancerError,
    BalancerState,
    EndpointRoute,
    FastLane,
    InvalidState,
    VersionRoute,
    _parse_show_proc,
    backend_name,
    backend_names,
    check_config,
    find_haproxy,
    haproxy_config,
    parse_server_name,
    parse_stats,
    server_weights,
    shares,
)

SOCKETS = {"frontend": "/run/studiohub/lb/frontend.sock",
           "runtime": "/run/studiohub/lb/runtime.sock"}


def version(number: int, share: float, replicas: int, prefix: str = "/srv/ep") -> VersionRoute:
    return VersionRoute(number, share, [(f"replica-{i}", f"{prefix}/v{number}/replica-{i}.sock")
                                        for i in range(replicas)])


def config(*endpoints: EndpointRoute) -> str:
    return haproxy_config(BalancerState(endpoints), **SOCKETS)


def test_a_canary_at_ten_percent_gets_ten_percent() -> None:
    iris = EndpointRoute("iris", [version(1, 90, 1), version(2, 10, 1)])
    assert abs(shares(iris)[2] - 10) <= 1
    weights = server_weights(iris)
    assert weights == {"v1-replica-0": 256, "v2-replica-0": 28}
    text = config(iris)
    assert "server v1-replica-0 unix@/srv/ep/v1/replica-0.sock weight 256" in text
    assert "server v2-replica-0 unix@/srv/ep/v2/replica-0.sock weight 28" in text


@pytest.mark.parametrize("old_replicas", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("new_replicas", [1, 2, 3, 5, 8])
def test_every_split_is_kept_within_one_point(old_replicas: int, new_replicas: int) -> None:
    for canary in (0.5, 1, 5, 10, 25, 33.3, 50, 75, 90, 99, 99.5):
        ep = EndpointRoute("ep", [version(1, 100 - canary, old_replicas),
                                  version(2, canary, new_replicas)])
        assert abs(shares(ep)[2] - canary) <= 1, (canary, server_weights(ep))
        weights = server_weights(ep)
        assert all(0 <= w <= MAX_WEIGHT for w in weights.values())
        # A version's weight is spread evenly over its replicas (at most 1 apart).
        for number in (1, 2):
            mine = [w for name, w in weights.items() if name.startswith(f"v{number}-")]
            assert max(mine) - min(mine) <= 1


def test_three_versions_and_a_version_without_traffic() -> None:
    ep = EndpointRoute("ep", [version(1, 0, 2), version(2, 30, 1), version(3, 70, 3)])
    split = shares(ep)
    assert split[1] == 0 and abs(split[2] - 30) <= 1 and abs(split[3] - 70) <= 1
    weights = server_weights(ep)
    # The retiring version's replicas stay servers (weight 0), reachable when pinned.
    assert weights["v1-replica-0"] == weights["v1-replica-1"] == 0
    assert "backend ep.v1\n" in config(ep)


def test_shares_are_relative_to_the_versions_that_have_replicas() -> None:
    # The version that had 90 % lost every replica: the canary takes all the traffic.
    ep = EndpointRoute("ep", [VersionRoute(1, 90, []), version(2, 10, 2)])
    assert shares(ep) == {1: 0.0, 2: 100.0}
    nothing = EndpointRoute("ep", [version(1, 0, 1)])
    assert server_weights(nothing) == {"v1-replica-0": 0}


def test_the_header_picks_only_backends_that_exist() -> None:
    text = config(EndpointRoute("iris", [version(1, 100, 1)]),
                  EndpointRoute("mnist", [version(3, 50, 1), version(4, 50, 1)]))
    assert "http-request set-var(txn.backend) req.hdr(x-studiohub-backend)" in text
    assert "http-request del-header x-studiohub-backend" in text  # replicas never see it
    assert "acl known var(txn.backend) -m str iris iris.v1 mnist mnist.v3 mnist.v4" in text
    assert ("http-request return status 404 content-type application/json "
            "string '{\"error\": \"no such endpoint\"}' unless known") in text
    assert "use_backend %[var(txn.backend)]" in text
    assert "bind unix@/run/studiohub/lb/frontend.sock mode 600" in text
    assert "http-response set-header X-Studiohub-Replica %[srv_name]" in text
    # Pinned backends track the endpoint backend's health checks, not run their own.
    assert "server v3-replica-0 unix@/srv/ep/v3/replica-0.sock track mnist/v3-replica-0" in text
    assert backend_name("mnist") == "mnist" and backend_name("mnist", 3) == "mnist.v3"
    empty = config()
    assert "unless known" not in empty and "use_backend" not in empty
    assert "http-request return status 404" in empty


def test_many_endpoints_fit_haproxys_words_per_line() -> None:
    endpoints = [EndpointRoute(f"ep{i}", [version(1, 100, 1, f"/s/{i}")]) for i in range(100)]
    lines = [line for line in config(*endpoints).splitlines() if "acl known" in line]
    assert len(lines) > 1 and all(len(line.split()) < 64 for line in lines)
    assert sum(len(line.split()) - 5 for line in lines) == 200


def test_health_checks_retries_and_timeouts() -> None:
    text = config(EndpointRoute("iris", [version(1, 100, 2)]))
    for line in ("master-worker", "expose-fd listeners", "option httpchk",
                 "http-check send meth GET uri /v2/health/ready", "http-check expect status 200",
                 "retries 1", "option redispatch", "retry-on conn-failure empty-response",
                 "timeout connect 2s", "timeout server 120s", "timeout client 120s",
                 "on-error mark-down", "inter 500ms", "fall 2 rise 1",
                 "stats socket /run/studiohub/lb/runtime.sock mode 600 level admin"):
        assert line in text, line


@pytest.mark.parametrize(("state", "problem"), [
    (BalancerState([EndpointRoute("Iris", [version(1, 100, 1)])]), "endpoint name"),
    (BalancerState([EndpointRoute("iris prod", [version(1, 100, 1)])]), "endpoint name"),
    (BalancerState([EndpointRoute("i" * 41, [version(1, 100, 1)])]), "endpoint name"),
    (BalancerState([EndpointRoute("iris", [VersionRoute(1, 100, [("Replica 0", "/s.sock")])])]),
     "replica name"),
    (BalancerState([EndpointRoute("iris", [VersionRoute(1, 100, [("r0", "/a\nserver x /b")])])]),
     "not an absolute path"),
    (BalancerState([EndpointRoute("iris", [VersionRoute(1, 100, [("r0", "/a b.sock")])])]),
     "not an absolute path"),
    (BalancerState([EndpointRoute("iris", [VersionRoute(1, 100, [("r0", "/a'.sock")])])]),
     "not an absolute path"),
    (BalancerState([EndpointRoute("iris", [VersionRoute(1, 100, [("r0", "rel.sock")])])]),
     "not an absolute path"),
    (BalancerState([EndpointRoute("iris", [VersionRoute(1, 100, [("r0", "/" + "a" * 99)])])]),
     "longer than"),
    (BalancerState([EndpointRoute("iris", [VersionRoute(1, 100, [("r0", "/a"), ("r0", "/b")])])]),
     "repeated"),
    (BalancerState([EndpointRoute("iris", [version(1, 50, 1), version(1, 50, 1)])]),
     "listed twice"),
    (BalancerState([EndpointRoute("iris", [version(0, 100, 1)])]), "positive integer"),
    (BalancerState([EndpointRoute("iris", [version(True, 100, 1)])]), "positive integer"),
    (BalancerState([EndpointRoute("iris", [version(1, 101, 1)])]), "between 0 and 100"),
    (BalancerState([EndpointRoute("iris", [version(1, -1, 1)])]), "between 0 and 100"),
    (BalancerState([EndpointRoute("iris", [version(1, 60, 1), version(2, 60, 1)])]),
     "more than 100"),
    (BalancerState([EndpointRoute("iris", [version(1, 100, 1)]),
                    EndpointRoute("iris", [version(2, 100, 1)])]), "used twice"),
])
def test_bad_states_are_refused_with_what_is_wrong(state: BalancerState, problem: str) -> None:
    with pytest.raises(InvalidState, match=problem):
        haproxy_config(state, **SOCKETS)


def test_bad_own_sockets_are_refused() -> None:
    with pytest.raises(InvalidState, match="frontend socket"):
        haproxy_config(BalancerState(), frontend="/tmp/a b", runtime="/tmp/r.sock")
    with pytest.raises(InvalidState, match="nbthread"):
        haproxy_config(BalancerState(), nbthread=0, **SOCKETS)


def test_server_names_carry_version_and_replica() -> None:
    assert parse_server_name("v12-replica-3") == (12, "replica-3")
    for bad in ("", None, "<NOSRV>", "replica-0", "v-1", "vx-replica-0", "v1-", "v1-Bad"):
        assert parse_server_name(bad) is None, bad


def test_the_state_round_trips_through_json() -> None:
    state = BalancerState([EndpointRoute("iris", [version(1, 90, 2), version(2, 10, 1)])])
    assert BalancerState.from_json(state.to_json()) == state
    assert backend_names(state) == ["iris", "iris.v1", "iris.v2"]


def test_stats_and_proc_listings_are_parsed() -> None:
    csv = ("# pxname,svname,scur,stot,econ,eresp,wretr,wredis,status,weight,check_status,"
           "hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,uweight,\n"
           "models,FRONTEND,0,9,,,,,OPEN,,,0,9,0,0,0,0,,\n"
           "iris,v1-replica-0,1,7,0,0,0,0,UP,252,L7OK,0,6,0,1,0,0,256,\n"
           "iris,v2-replica-0,0,2,1,0,1,1,DOWN,28,L4CON,0,2,0,0,0,0,28,\n"
           "iris,BACKEND,1,9,,,,,UP,280,,0,8,0,1,0,0,,\n")
    servers = parse_stats(csv)
    assert [(s.backend, s.server, s.status, s.weight) for s in servers] == [
        ("iris", "v1-replica-0", "UP", 256), ("iris", "v2-replica-0", "DOWN", 28)]
    assert servers[0].requests == 7 and servers[0].responses["4xx"] == 1
    assert servers[0].up and not servers[1].up and servers[1].redispatches == 1
    assert (servers[1].version, servers[1].replica) == (2, "replica-0")
    procs = _parse_show_proc(
        "#<PID>          <type>          <reloads>       <uptime>        <version>\n"
        "1162            master          5 [failed: 1]   0d00h02m53s     2.6.12\n"
        "# workers\n"
        "1271            worker          1               0d00h00m00s     2.6.12\n"
        "# old workers\n"
        "1233            worker          3               0d00h00m43s     2.6.12\n"
        "# programs\n")
    assert (procs.reloads, procs.failed, procs.workers, procs.old) == (5, 1, (1271,), (1233,))


@pytest.fixture
def haproxy() -> str:
    path = find_haproxy()
    if not Path(path).exists():
        pytest.skip("HAProxy is not installed (make system-deps installs Debian's haproxy)")
    return path


def test_haproxy_accepts_the_configuration(haproxy: str) -> None:
    check_config(config(
        EndpointRoute("iris", [version(1, 90, 2), version(2, 10, 1)]),
        EndpointRoute("mnist", [version(7, 100, 3, "/srv/mnist")]),
        *[EndpointRoute(f"ep{i}", [version(1, 100, 1, f"/s/{i}")]) for i in range(40)]),
        haproxy)
    check_config(config(), haproxy)


def test_haproxy_refusal_is_reported_with_its_reason(haproxy: str) -> None:
    text = config(EndpointRoute("iris", [version(1, 100, 1)])) + "\n    no-such-keyword 1\n"
    with pytest.raises(BalancerError, match="unknown keyword 'no-such-keyword'"):
        check_config(text, haproxy)


def test_an_endpoint_named_like_a_version_backend_does_not_clash() -> None:
    state = BalancerState([EndpointRoute("iris", [version(1, 100, 1)]),
                           EndpointRoute("iris-v1", [version(1, 100, 1)])])
    assert backend_names(state) == ["iris", "iris.v1", "iris-v1", "iris-v1.v1"]


def test_endpoints_named_like_the_fast_lanes_own_parts_are_served(
        haproxy: str, tmp_path: Path) -> None:
    """``gateway``, ``direct`` and ``models`` are endpoint names like any other: HAProxy's
    own frontends and the gateway's backend never take an endpoint's name."""
    tokens = tmp_path / "tokens.map"
    tokens.write_text("")  # HAProxy reads the map when it checks the configuration
    lane = FastLane(direct="/run/studiohub/lb/direct.sock", gateway="/run/sh/gateway.sock",
                    meter="/run/sh/meter.sock", tokens_map=str(tokens))
    state = BalancerState([EndpointRoute(name, [version(1, 100, 1, f"/s/{name}")])
                           for name in ("gateway", "direct", "models")])
    check_config(haproxy_config(state, lane=lane, **SOCKETS), haproxy)
