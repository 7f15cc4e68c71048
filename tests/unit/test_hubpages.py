"""The hub's pages as StudioHub's: what the home page is told, and that JupyterHub's own
template loader renders StudioHub's templates (a mistake in one is every user's 500).

The browser test (tests/browser/test_hub_pages.py) shows them on a real hub."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jupyterhub._data import DATA_FILES_PATH
from traitlets.config import Config

from studiohub import configurer, hubpages
from studiohub.catalog import load_catalog
from studiohub.catalog_choice import CatalogChoice
from studiohub.hubpages import DomainView, PageData, ServerView, make_page_data, page_data
from studiohub.settings import load_settings

STOCK_TEMPLATES = Path(DATA_FILES_PATH) / "templates"


@dataclass
class Group:
    name: str


@dataclass
class FakeUser:
    name: str
    groups: list[Group] = field(default_factory=list)


class FakeSpawner(CatalogChoice):
    """The parts of a StudioSpawner the home page reads: state, choice, saved options."""

    def __init__(self, catalog_path: str, groups: tuple[str, ...] = (), *,
                 ready: bool = False, pending: str | None = None,
                 user_options: dict[str, Any] | None = None, choice: Any = None) -> None:
        self.catalog_path = catalog_path
        self.user = FakeUser("ann", [Group(g) for g in groups])
        self.ready, self.pending = ready, pending
        self.user_options = user_options or {}
        self.choice = choice


@pytest.fixture
def catalog_path(tmp_path: Path) -> str:
    path = tmp_path / "catalog.yaml"
    path.write_text("""
sizes:
  tiny: {display_name: Tiny, cpus: 1, memory: 512M}
domains:
  team-a: {display_name: Team A, description: The churn team., images: [base],
           sizes: [tiny, small]}
""")
    return str(path)


def test_a_running_server_shows_the_image_and_size_it_started_on(catalog_path: str) -> None:
    catalog = load_catalog(catalog_path)
    choice = catalog.choose(["team-a"], {"image": "base", "size": "tiny"})
    # The saved options say otherwise: what this hub validated at the start wins.
    spawner = FakeSpawner(catalog_path, ("team-a",), ready=True, choice=choice,
                          user_options={"size": "small"})
    data = make_page_data(spawner)
    assert data.server == ServerView(
        state="running", image_id="base", size_id="tiny", image="Base Python 3.11 · CPU",
        image_description="NumPy, pandas, Matplotlib and ipywidgets.",
        size="Tiny", size_limits="1 vCPU + 512 MiB")
    assert data.domains == [DomainView("Team A", "The churn team.")]
    assert data.images == ["Base Python 3.11 · CPU"]
    assert data.sizes == ["Tiny", "1 vCPU + 2 GiB"]


def test_after_a_hub_restart_the_saved_options_say_what_runs(catalog_path: str) -> None:
    spawner = FakeSpawner(catalog_path, ("team-a",), ready=True, user_options={"size": "small"})
    server = make_page_data(spawner).server
    assert server is not None
    # The catalog's default image fills what the options left out, as the start did.
    assert (server.image_id, server.size_id, server.size_limits) == ("base", "small", "")


@pytest.mark.parametrize("pending, ready, state", [
    ("spawn", False, "starting"), ("stop", True, "stopping"), (None, False, "stopped")])
def test_server_state(catalog_path: str, pending: str | None, ready: bool, state: str) -> None:
    spawner = FakeSpawner(catalog_path, pending=pending, ready=ready,
                          user_options={"image": "base"})
    server = make_page_data(spawner).server
    assert server is not None and server.state == state and server.image_id == "base"


def test_a_never_started_server_has_no_image_or_size(catalog_path: str) -> None:
    assert make_page_data(FakeSpawner(catalog_path)).server == ServerView(state="stopped")


def test_options_the_catalog_no_longer_allows_are_shown_by_id(catalog_path: str) -> None:
    spawner = FakeSpawner(catalog_path, ("team-a",),
                          user_options={"image": "pytorch", "size": "gone"})
    server = make_page_data(spawner).server
    assert server is not None
    # pytorch is still in the catalog (its label), the size is not (its id).
    assert (server.image, server.size, server.size_limits) == ("PyTorch 2.13 · CPU", "gone", "")


def test_page_data_without_a_user_or_with_a_broken_spawner(caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    assert page_data(None) == PageData()

    class Broken:
        name = "ann"

        @property
        def spawner(self) -> Any:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        assert page_data(Broken()) == PageData()
    assert "StudioHub's page data for ann" in caplog.text


def test_configurer_puts_templates_logo_and_data_first(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nauth:\n  type: shared-password\n")
    settings = load_settings(config, environ={})
    c = Config()
    c.JupyterHub.template_paths = ["/operator/templates"]
    c.JupyterHub.template_vars = {"announcement": "hello", "studiohub_brand": "Acme Lab"}
    configurer.apply(c, settings, load_catalog())
    configurer.apply(c, settings, load_catalog())  # idempotent
    assert c.JupyterHub.template_paths == [str(hubpages.TEMPLATES), "/operator/templates"]
    assert Path(c.JupyterHub.logo_file).read_text().startswith("<svg")
    assert c.JupyterHub.template_vars["studiohub"] is page_data
    # The jobs service is on by default: the home page links to the Lab's Training sidebar.
    assert c.JupyterHub.template_vars["studiohub_jobs_path"] == \
        "user-redirect/lab?studiohub-sidebar=training"
    # What an operator set before stays theirs.
    assert c.JupyterHub.template_vars["studiohub_brand"] == "Acme Lab"
    assert c.JupyterHub.template_vars["announcement"] == "hello"


def test_no_jobs_link_without_the_jobs_service(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\njobs:\n  enabled: false\n")
    c = Config()
    configurer.apply(c, load_settings(config, environ={}), load_catalog())
    assert c.JupyterHub.template_vars["studiohub_jobs_path"] == ""


def test_kubernetes_hub_gets_the_pages_too() -> None:
    """kube.configure (the chart's hub.extraConfig) sets them, the jobs link with jobs on."""
    from studiohub import kube

    c = Config()
    kube.configure(c, "", sharing=False, jobs=True)
    assert c.JupyterHub.template_paths[0] == str(hubpages.TEMPLATES)
    assert c.JupyterHub.logo_file == str(hubpages.LOGO)
    assert c.JupyterHub.template_vars["studiohub_jobs_path"] == hubpages.JOBS_PATH
    c = Config()
    kube.configure(c, "", sharing=False, jobs=False)
    assert c.JupyterHub.template_vars["studiohub_jobs_path"] == ""


def test_kubespawner_options_are_read_as_its_spawner_reads_them(catalog_path: str) -> None:
    """On Kubernetes the saved options say ``profile`` for the size."""
    from studiohub.spawners.kube import options_to_choice

    class KubeLike(FakeSpawner):
        def validate_options(self, catalog: Any, options: Any) -> Any:
            return options_to_choice(catalog, self.groups, options)

    # Not the domain's default size (small): the profile is what was chosen.
    spawner = KubeLike(catalog_path, ("team-a",), user_options={"profile": "tiny",
                                                                "image": "base"})
    server = make_page_data(spawner).server
    assert server is not None and (server.image_id, server.size_id) == ("base", "tiny")


def hub_environment() -> jinja2.Environment:
    """Templates found as JupyterHub finds them (``JupyterHub.init_tornado_settings``):
    ``templates/…`` is always the stock one, other names StudioHub's first."""
    assert (STOCK_TEMPLATES / "page.html").exists(), STOCK_TEMPLATES
    return jinja2.Environment(autoescape=True, loader=jinja2.ChoiceLoader([
        jinja2.PrefixLoader({"templates": jinja2.FileSystemLoader([STOCK_TEMPLATES])}, "/"),
        jinja2.FileSystemLoader([hubpages.TEMPLATES, STOCK_TEMPLATES])]))


@dataclass
class PageUser:
    name: str = "ann<b>"
    json_escaped_name: str = "ann<b>"
    spawner: Any = None


@dataclass
class DefaultServer:
    active: bool = False


def namespace(**extra: Any) -> dict[str, Any]:
    """What ``BaseHandler.template_namespace`` gives every page, plus ``extra``."""
    return {"base_url": "/hub/", "prefix": "/", "user": None, "login_url": "/hub/login",
            "logout_url": "/hub/logout", "static_url": lambda path, **kw: f"/static/{path}",
            "version_hash": "", "services": [], "parsed_scopes": set(), "xsrf": "x",
            "xsrf_token": "x", "studiohub": PageData(), "studiohub_brand": "StudioHub",
            "studiohub_jobs_path": "", "studiohub_first_login": "", **extra}


def test_login_page_renders_brand_over_the_stock_form() -> None:
    html = hub_environment().get_template("login.html").render(
        **namespace(authenticator_login_url="/hub/login", authenticator=None, username=""))
    assert "<title>StudioHub</title>" in html
    assert html.index('class="studiohub-brand') < html.index('id="username_input"')
    assert 'alt="StudioHub logo"' in html and "JupyterHub logo" not in html
    assert "studiohub-first-login" not in html  # not every authenticator creates accounts


def test_first_use_login_page_says_a_first_login_creates_the_account(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nauth:\n  type: firstuse\n")
    c = Config()
    configurer.apply(c, load_settings(config, environ={}), load_catalog())
    note = c.JupyterHub.template_vars["studiohub_first_login"]
    assert "first login creates your account" in note and "at least 8 characters" in note
    html = hub_environment().get_template("login.html").render(**namespace(
        authenticator_login_url="/hub/login", authenticator=None, username="",
        studiohub_first_login=note))
    assert html.index('id="password_input"') < html.index('id="studiohub-first-login"')
    assert note in html
    config.write_text(f"state_dir: {tmp_path / 'state'}\nauth:\n  type: shared-password\n")
    c = Config()
    configurer.apply(c, load_settings(config, environ={}), load_catalog())
    assert c.JupyterHub.template_vars["studiohub_first_login"] == ""


def test_home_page_renders_server_domains_and_escapes_names() -> None:
    data = PageData(server=ServerView(state="running", image_id="base", size_id="tiny",
                                      image="Base <i>Python</i>", size="Tiny"),
                    domains=[DomainView("Team <A>", "")], images=["Base"], sizes=["Tiny"])

    @dataclass
    class Service:
        name: str
        href: str

    html = hub_environment().get_template("home.html").render(**namespace(
        user=PageUser(), studiohub=data, default_server=DefaultServer(active=True),
        url="/user/ann/", allow_named_servers=False,
        services=[Service("sharing", "/services/sharing/")],
        studiohub_jobs_path="user-redirect/lab?x=1"))
    assert 'id="studiohub-server-state">Running<' in html
    assert "Base &lt;i&gt;Python&lt;/i&gt;" in html and "Team &lt;A&gt;" in html
    assert "Welcome, ann&lt;b&gt;" in html
    assert 'id="studiohub-shared-link" href="/services/sharing/"' in html
    assert 'id="studiohub-stop"' in html and 'id="studiohub-start"' not in html
    assert 'id="studiohub-jobs-link" href="/hub/user-redirect/lab?x=1"' in html


def test_home_page_without_sharing_has_no_shared_link() -> None:
    html = hub_environment().get_template("home.html").render(**namespace(
        user=PageUser(), default_server=DefaultServer(), url="/hub/spawn/ann",
        allow_named_servers=False))
    assert "studiohub-shared-link" not in html and "You have no server yet" in html
    assert "studiohub-jobs-link" not in html
    assert 'id="studiohub-start" role="button" class="btn btn-primary" ' \
           'href="/hub/spawn/ann"' in html


def test_spawn_page_renders_heading_with_domains() -> None:
    html = hub_environment().get_template("spawn.html").render(**namespace(
        user=PageUser(), studiohub=PageData(domains=[DomainView("Team A")]),
        url="/hub/spawn/ann", spawner_options_form="<p>form</p>"))
    assert "Start your server" in html and "Your domains: Team A." in html
    assert "<p>form</p>" in html
