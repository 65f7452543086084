"""Which engine a host joins: RivetKit's ``RIVET_*`` variables, explicit values winning, no endpoint meaning
embedded."""

from __future__ import annotations

import pytest

from rivetgreen.client.urls import Endpoint
from rivetgreen.engine.envoy.settings import EngineSettings, engine_settings
from rivetgreen.errors import RivetError

ENVIRONMENT = {
    "RIVET_ENDPOINT": "http://127.0.0.1:7000", "RIVET_POOL": "backend", "RIVET_NAMESPACE": "prod",
    "RIVET_TOKEN": "secret",
}


def test_the_environment_names_engine_pool_namespace_and_token() -> None:
    assert engine_settings(environ=ENVIRONMENT) == EngineSettings(
        Endpoint("http://127.0.0.1:7000", "", "prod", "secret"), "backend"
    )


def test_explicit_values_win_over_the_environment() -> None:
    settings = engine_settings("http://engine:6420/rivet", "other-pool", "staging", "token-2", environ=ENVIRONMENT)
    assert settings == EngineSettings(Endpoint("http://engine:6420", "/rivet", "staging", "token-2"), "other-pool")


def test_defaults_are_the_default_pool_and_namespace_without_token() -> None:
    assert engine_settings(environ={"RIVET_ENDPOINT": "http://127.0.0.1:6420", "RIVET_POOL": ""}) == EngineSettings(
        Endpoint("http://127.0.0.1:6420", "", "default", None), "default"
    )


def test_namespace_and_token_may_ride_in_the_endpoint_url() -> None:
    settings = engine_settings(environ={"RIVET_ENDPOINT": "http://prod:secret@127.0.0.1:6420"})
    assert settings is not None
    assert (settings.endpoint.url, settings.endpoint.namespace, settings.endpoint.token) == (
        "http://127.0.0.1:6420", "prod", "secret"
    )


@pytest.mark.parametrize("environ", [{}, {"RIVET_ENDPOINT": ""}, {"RIVET_POOL": "backend"}], ids=str)
def test_no_endpoint_means_embedded(environ: dict[str, str]) -> None:
    assert engine_settings(environ=environ) is None


@pytest.mark.parametrize("endpoint", ["127.0.0.1:6420", "ftp://127.0.0.1", "http://127.0.0.1:6420/?x=1"])
def test_a_malformed_endpoint_is_a_clear_error(endpoint: str) -> None:
    with pytest.raises(RivetError) as failed:
        engine_settings(endpoint, environ={})
    assert (failed.value.group, failed.value.code) == ("engine", "invalid_endpoint")
    assert endpoint in failed.value.message
