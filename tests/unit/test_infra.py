"""infra/ Terraform, read offline: every .tf parses (python-hcl2), and what it deploys is
built from infra/deployment.json and infra/firestore.indexes.json and agrees with the
code (entry points in functions/main.py, the variables noetl_core/settings.py reads).

No provider, no project: `terraform validate` and `plan` need the provider registry. What
is checked here is the wiring: which declaration key each resource iterates over, that
no declared fact is written into a .tf file a second time, and the declaration's own
security rules (public functions, secret access, the invoker account)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

from emulators import deploy
from noetl_core import settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
DECLARATION: dict[str, Any] = json.loads((INFRA / "deployment.json").read_text())
INDEX_FILE: dict[str, Any] = json.loads((INFRA / DECLARATION["firestore"]["indexes"]).read_text())
MODULES = sorted(p for p in (INFRA / "modules").iterdir() if p.is_dir())
SHAPE = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")
TF_FILES = sorted(p for p in INFRA.rglob("*.tf") if ".terraform" not in p.parts)
OPTIONS = hcl2.SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)


def parse(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return dict(hcl2.load(f, serialization_options=OPTIONS))


class Module:
    """The blocks of one Terraform module (a folder), merged across its files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        self.modules: dict[str, dict[str, Any]] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.text = ""
        for path in sorted(folder.glob("*.tf")):
            self.text += path.read_text()
            tree = parse(path)
            for block in tree.get("resource", []):
                for kind, named in block.items():
                    for name, body in named.items():
                        self.resources[(kind, name)] = body
            for block in tree.get("locals", []):
                self.locals.update(block)
            for block in tree.get("module", []):
                self.modules.update(block)
            for block in tree.get("variable", []):
                self.variables.update(block)
            for block in tree.get("output", []):
                self.outputs.update(block)

    def resource(self, kind: str, name: str = "this") -> dict[str, Any]:
        assert (kind, name) in self.resources, f"{self.folder}: no {kind}.{name}"
        return self.resources[(kind, name)]


def expr(value: Any) -> str:
    """An attribute as Terraform source-ish text (hcl2 gives expressions as "${...}")."""
    return value if isinstance(value, str) else json.dumps(value)


def compact(value: Any) -> str:
    return re.sub(r"\s+", "", expr(value))


ROOT_MODULE = Module(INFRA)
CHILD = {p.name: Module(p) for p in MODULES}


def child_input(module: str, variable: str) -> str:
    """What the root module passes to a child module's variable, whitespace removed."""
    call = ROOT_MODULE.modules[module]
    assert variable in call, f"module.{module} is not given {variable}"
    return compact(call[variable])


# --- parsing and shape ---------------------------------------------------------------


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_tf_file_parses(path: Path) -> None:
    assert isinstance(parse(path), dict)


@pytest.mark.parametrize(
    "folder",
    [INFRA, INFRA / "examples" / "dev", *MODULES],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_every_module_has_the_four_file_shape(folder: Path) -> None:
    assert sorted(p.name for p in folder.glob("*.tf")) == sorted(SHAPE)
    module = Module(folder)
    for name, variable in module.variables.items():
        assert variable.get("description"), f"{folder}: variable {name} has no description"
        assert "type" in variable, f"{folder}: variable {name} has no type"
    for name, output in module.outputs.items():
        assert output.get("description"), f"{folder}: output {name} has no description"
    versions = parse(folder / "versions.tf")["terraform"][0]
    assert ">= 1.9" in versions["required_version"]
    google = versions["required_providers"][0]["google"]
    assert google["source"] == "hashicorp/google"
    assert "<" in google["version"] and ">=" in google["version"], "a version range"


def test_the_root_module_wires_every_child_module() -> None:
    called = {
        compact(call["source"]).removeprefix("./modules/") for call in ROOT_MODULE.modules.values()
    }
    assert called == {p.name for p in MODULES}


def test_both_files_are_read_with_jsondecode() -> None:
    declaration = compact(ROOT_MODULE.locals["declaration"])
    assert declaration == '${jsondecode(file("${path.module}/deployment.json"))}'
    indexes = compact(ROOT_MODULE.locals["indexes"])
    assert indexes == (
        '${jsondecode(file("${path.module}/${local.declaration.firestore.indexes}"))}'
    )


# --- nothing declared is written twice -----------------------------------------------


def declared_literals() -> set[str]:
    """Names and values the declaration holds that must not reappear in a .tf file."""
    d = DECLARATION
    found = {
        *d["topics"].values(),
        *d["service_accounts"].values(),
        *d["secrets"],
        d["tasks_queue"]["name"],
        d["dead_letter_subscription"]["name"],
        d["bucket"]["name"].replace("{project}", ""),
        d["firestore"]["location"],
        d["runtime"],
        *(f["push"]["subscription"] for f in d["functions"].values() if "push" in f),
        *(v for v in d["env"].values() if "{" not in v),
        *d["env"],
        *d["secret_env"],
        *(k for f in d["functions"].values() for k in f.get("env", {})),
        *(k for f in d["functions"].values() for k in f.get("secret_env", {})),
    }
    for grants in [*d["iam"].values(), *d["service_agents"].values()]:
        for value in grants.values():
            roles = value if isinstance(value, list) else [r for v in value.values() for r in v]
            found.update(roles)
    for index in INDEX_FILE["indexes"]:
        found.add(index["collectionGroup"])
    return {s for s in found if len(s) > 3}


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_no_declared_fact_is_repeated_in_terraform(path: Path) -> None:
    # code only: comments, descriptions and error messages may name examples
    prose = re.compile(r"^\s*(#|description\s*=|error_message\s*=)")
    text = "\n".join(line for line in path.read_text().splitlines() if not prose.match(line))
    repeated = sorted(s for s in declared_literals() if re.search(rf"\b{re.escape(s)}\b", text))
    # the public functions' run.invoker for allUsers is not a declared grant: it is what
    # `public` means
    if path == INFRA / "modules" / "functions" / "main.tf":
        repeated = [s for s in repeated if s != "roles/run.invoker"]
    assert repeated == [], f"{path.relative_to(INFRA)} repeats {repeated}"


# --- functions -----------------------------------------------------------------------


def entry_points_in_main() -> set[str]:
    tree = ast.parse((ROOT / "functions" / "main.py").read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.decorator_list
    }


def test_every_declared_function_is_a_cloud_function_built_from_the_declaration() -> None:
    function = CHILD["functions"].resource("google_cloudfunctions2_function")
    assert compact(function["for_each"]) == "${var.functions}"
    assert child_input("functions", "functions") == "${local.functions}"
    functions_local = compact(ROOT_MODULE.locals["functions"])
    assert functions_local.startswith("${{forname,specinlocal.declaration.functions:name=>{")
    for field, source in {
        "entry_point": "spec.entry_point",
        "public": "spec.public",
        "timeout": "spec.timeout_seconds",
        "memory": "spec.memory",
    }.items():
        assert f"{field}={source}" in functions_local, field
    build = function["build_config"][0]
    assert compact(build["entry_point"]) == "${each.value.entry_point}"
    assert compact(build["runtime"]) == "${var.runtime}"
    assert child_input("functions", "runtime") == "${local.declaration.runtime}"
    service = function["service_config"][0]
    assert compact(service["timeout_seconds"]) == "${each.value.timeout}"
    assert compact(service["available_memory"]) == "${each.value.memory}"
    assert compact(service["environment_variables"]) == "${each.value.environment}"
    secret_env = service["dynamic"][0]["secret_environment_variables"]
    assert compact(secret_env["for_each"]) == "${each.value.secret_environment}"
    source = build["source"][0]["storage_source"][0]
    assert compact(source["object"]) == "${var.source_object}"
    upload = CHILD["storage"].resource("google_storage_bucket_object", "source")
    assert compact(upload["source"]) == "${var.source_zip}"
    assert "filesha256(var.source_zip)" in compact(upload["name"])


@pytest.mark.parametrize("name", sorted(DECLARATION["functions"]))
def test_each_entry_point_is_a_function_of_main(name: str) -> None:
    assert DECLARATION["functions"][name]["entry_point"] in entry_points_in_main()


def test_each_function_runs_as_its_own_service_account() -> None:
    assert set(DECLARATION["functions"]) <= set(DECLARATION["service_accounts"])
    assert "account=name" in compact(ROOT_MODULE.locals["functions"])
    service = CHILD["functions"].resource("google_cloudfunctions2_function")["service_config"][0]
    assert compact(service["service_account_email"]) == (
        "${var.service_accounts[each.value.account]}"
    )


def test_no_push_fed_function_has_an_event_trigger() -> None:
    pushed = {k for k, f in DECLARATION["functions"].items() if "push" in f}
    assert pushed, "the declaration feeds some function by push"
    function = CHILD["functions"].resource("google_cloudfunctions2_function")
    dynamic = [name for block in function.get("dynamic", []) for name in block]
    assert "event_trigger" not in function and "event_trigger" not in dynamic
    code = [
        line for line in CHILD["functions"].text.splitlines() if not line.lstrip().startswith("#")
    ]
    assert not any("event_trigger" in line for line in code)


def test_push_subscriptions_follow_the_declaration() -> None:
    push = child_input("pubsub", "push")
    assert "forname,finlocal.functions" in push and "iff.push!=null" in push
    assert "push=try(spec.push,null)" in compact(ROOT_MODULE.locals["functions"])
    sub = CHILD["pubsub"].resource("google_pubsub_subscription", "push")
    assert compact(sub["for_each"]) == "${var.push}"
    assert compact(sub["name"]) == "${each.value.subscription}"
    assert compact(sub["ack_deadline_seconds"]) == "${each.value.ack_deadline_seconds}"
    retry = sub["retry_policy"][0]
    assert compact(retry["minimum_backoff"]) == '${"${each.value.min_backoff_seconds}s"}' or (
        compact(retry["minimum_backoff"]) == "${each.value.min_backoff_seconds}s"
    )
    assert compact(sub["dead_letter_policy"][0]["max_delivery_attempts"]) == (
        "${each.value.max_delivery_attempts}"
    )
    oidc = sub["push_config"][0]["oidc_token"][0]
    assert compact(oidc["service_account_email"]) == "${var.pusher_email}"
    assert compact(oidc["audience"]) == "${each.value.endpoint}"
    assert child_input("pubsub", "pusher_email") == '${module.iam.service_account_emails["pusher"]}'
    assert sub["expiration_policy"][0]["ttl"] == ""
    for f in DECLARATION["functions"].values():
        if "push" in f:  # more attempts than the worker counts before dead-lettering itself
            assert f["push"]["max_delivery_attempts"] > int(
                DECLARATION["env"]["NOETL_MAX_DELIVERIES"]
            )


# --- the environment -----------------------------------------------------------------


def names_settings_reads() -> set[str]:
    """Every environment variable name noetl_core/settings.py reads (as a literal argument
    of a call: source.get("X"), _int(source, "X", ...), value("X"))."""
    tree = ast.parse(Path(settings.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for arg in node.args:
                if (
                    isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str)
                    and re.fullmatch(r"[A-Z][A-Z0-9_]+", arg.value)
                ):
                    names.add(arg.value)
    return names


def terraform_added_env() -> set[str]:
    """Variables the root module adds to the declared shared environment itself."""
    shared = compact(ROOT_MODULE.locals["shared_env"])
    assert "local.shared_env_templates" in shared
    templates = compact(ROOT_MODULE.locals["shared_env_templates"])
    assert templates.startswith("${{forkey,valueinlocal.declaration.env:")
    return set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", shared))


def function_env(name: str) -> set[str]:
    spec = DECLARATION["functions"][name]
    return {
        *DECLARATION["env"],
        *terraform_added_env(),
        *spec.get("env", {}),
        *DECLARATION["secret_env"],
        *spec.get("secret_env", {}),
    }


def test_the_settings_reader_is_found() -> None:
    read = names_settings_reads()
    assert {
        "NOETL_HOME",
        "NOETL_LEASE_SECONDS",
        "K_SERVICE",
        *settings.PRODUCTION_VARIABLES,
    } <= read


@pytest.mark.parametrize("name", sorted(DECLARATION["functions"]))
def test_every_variable_a_function_gets_is_one_settings_reads(name: str) -> None:
    allowed = names_settings_reads() | {"FUNCTION_USE_ASGI"}  # functions-framework's own
    assert sorted(function_env(name) - allowed) == []


@pytest.mark.parametrize("name", sorted(DECLARATION["functions"]))
def test_every_production_variable_is_set_for_every_function(name: str) -> None:
    missing = set(settings.PRODUCTION_VARIABLES) - function_env(name)
    assert sorted(missing) == []
    env = compact(ROOT_MODULE.locals["functions"])
    assert "environment=merge(local.shared_env," in env
    assert "secret_environment=merge(local.declaration.secret_env,try(spec.secret_env,{}))" in env


def test_the_gateway_alone_gets_the_gateway_key() -> None:
    holders = {k for k in DECLARATION["functions"] if "NOETL_GATEWAY_KEY" in function_env(k)}
    assert holders == {"gateway"}


def test_the_lease_is_the_worker_timeout_plus_the_emulator_margin() -> None:
    assert "NOETL_LEASE_SECONDS=tostring(local.lease_seconds)" in compact(
        ROOT_MODULE.locals["shared_env"]
    )
    assert compact(ROOT_MODULE.locals["lease_seconds"]) == (
        "${local.declaration.functions.worker.timeout_seconds+local.lease_margin_seconds}"
    )
    assert ROOT_MODULE.locals["lease_margin_seconds"] == deploy.LEASE_MARGIN


def test_every_placeholder_has_a_value_in_terraform() -> None:
    kinds = set(ROOT_MODULE.locals["placeholder_values"])
    if "bucket=local.payload_bucket" in compact(ROOT_MODULE.locals["placeholders"]):
        kinds.add("bucket")
    declared = [DECLARATION["bucket"]["name"], *DECLARATION["env"].values()]
    declared += [v for f in DECLARATION["functions"].values() for v in f.get("env", {}).values()]
    for value in declared:
        for kind, name in re.findall(r"\{([a-z_]+)(?::([a-z_]+))?\}", value):
            assert kind in kinds, f"{value}: no Terraform value for {{{kind}}}"
            names = {
                "url": DECLARATION["functions"],
                "account": DECLARATION["service_accounts"],
                "topic": DECLARATION["topics"],
                "queue": ("name", "location"),
            }.get(kind, ("",))
            assert name in names, f"{value}: {{{kind}:{name}}} names nothing declared"
    for local in ("payload_bucket", "shared_env", "functions"):
        assert "templatestring(" in compact(ROOT_MODULE.locals[local]), local


def test_function_urls_are_deterministic_run_app_urls() -> None:
    urls = compact(ROOT_MODULE.locals["urls"])
    assert "https://${service}-${local.project_number}.${local.region}.run.app" in urls
    assert compact(ROOT_MODULE.locals["project_number"]) == "${data.google_project.this.number}"


# --- names come from the declaration -------------------------------------------------


def test_topic_bucket_queue_and_secret_names_come_from_the_declaration() -> None:
    assert child_input("pubsub", "topics") == "${local.declaration.topics}"
    topic = CHILD["pubsub"].resource("google_pubsub_topic")
    assert compact(topic["for_each"]) == "${var.topics}"
    assert compact(topic["name"]) == "${each.value}"
    assert child_input("pubsub", "dead_letter_subscription") == (
        "${local.declaration.dead_letter_subscription}"
    )
    assert child_input("tasks", "queue") == "${local.declaration.tasks_queue}"
    queue = CHILD["tasks"].resource("google_cloud_tasks_queue", "timers")
    assert compact(queue["name"]) == "${var.queue.name}"
    assert compact(queue["location"]) == "${var.queue.location}"
    assert child_input("storage", "payload_bucket") == "${local.payload_bucket}"
    assert "local.declaration.bucket.name" in compact(ROOT_MODULE.locals["bucket_template"])
    bucket = CHILD["storage"].resource("google_storage_bucket", "payloads")
    assert compact(bucket["name"]) == "${var.payload_bucket}"
    assert child_input("storage", "delete_after_days") == (
        "${local.declaration.bucket.delete_after_days}"
    )
    assert child_input("secrets", "secrets") == "${local.declaration.secrets}"
    secret = CHILD["secrets"].resource("google_secret_manager_secret")
    assert compact(secret["secret_id"]) == "${each.key}"
    assert child_input("iam", "service_accounts") == "${local.declaration.service_accounts}"
    assert child_input("apis", "services") == "${var.enable_apis?local.declaration.apis:[]}"


def test_secret_values_are_never_in_terraform() -> None:
    for module in [ROOT_MODULE, *CHILD.values()]:
        kinds = {kind for kind, _ in module.resources}
        assert "google_secret_manager_secret_version" not in kinds


# --- Firestore -----------------------------------------------------------------------


def index_key(index: dict[str, Any]) -> str:
    """modules/firestore's key of one index (so two indexes never share one)."""
    fields = [f"{f['fieldPath']}:{f.get('order') or f.get('arrayConfig')}" for f in index["fields"]]
    return "/".join([index["collectionGroup"], index["queryScope"], *fields])


def test_every_index_of_the_index_file_reaches_terraform() -> None:
    assert child_input("firestore", "indexes") == "${local.indexes.indexes}"
    assert child_input("firestore", "field_overrides") == (
        "${try(local.indexes.fieldOverrides,[])}"
    )
    firestore = CHILD["firestore"]
    index = firestore.resource("google_firestore_index")
    assert compact(index["for_each"]) == "${local.indexes}"
    assert compact(firestore.locals["indexes"]).startswith("${{forindexinvar.indexes:")
    assert compact(index["collection"]) == "${each.value.collectionGroup}"
    field = firestore.resource("google_firestore_field")
    assert compact(field["for_each"]) == "${local.field_overrides}"
    assert compact(firestore.locals["field_overrides"]).startswith("${{foroinvar.field_overrides:")
    keys = [index_key(i) for i in INDEX_FILE["indexes"]]
    assert len(set(keys)) == len(keys) == len(INDEX_FILE["indexes"]) > 0
    overrides = [f"{o['collectionGroup']}/{o['fieldPath']}" for o in INDEX_FILE["fieldOverrides"]]
    assert len(set(overrides)) == len(overrides)


def test_the_database_follows_the_declaration() -> None:
    for key in ("database", "location", "type", "point_in_time_recovery", "delete_protection"):
        assert child_input("firestore", key) == f"${{local.declaration.firestore.{key}}}"


# --- who may do what -----------------------------------------------------------------


def public_functions() -> set[str]:
    return {k for k, f in DECLARATION["functions"].items() if f["public"]}


def test_the_public_functions_are_the_ones_that_verify_their_callers() -> None:
    # gateway checks a bearer token on every route, callback an HMAC token per callback
    assert public_functions() == {"gateway", "callback"}
    public = CHILD["functions"].resource("google_cloud_run_v2_service_iam_member", "public")
    assert compact(public["for_each"]) == "${{forkey,finvar.functions:key=>fiff.public}}"
    assert public["member"] == "allUsers"
    service = CHILD["functions"].resource("google_cloudfunctions2_function")["service_config"][0]
    assert compact(service["ingress_settings"]) == (
        '${each.value.public?"ALLOW_ALL":"ALLOW_INTERNAL_ONLY"}'
    )
    # no declared grant makes a private function public
    for grants in DECLARATION["iam"].values():
        for function in grants.get("functions", {}):
            assert function not in public_functions()


def test_grants_are_the_declaration_flattened() -> None:
    assert child_input("iam", "grants") == "${local.declaration.iam}"
    assert child_input("iam", "agent_grants") == "${local.declaration.service_agents}"
    iam = CHILD["iam"]
    kinds = {
        "google_project_iam_member": "project",
        "google_pubsub_topic_iam_member": "topics",
        "google_pubsub_subscription_iam_member": "subscriptions",
        "google_storage_bucket_iam_member": "bucket",
        "google_cloud_tasks_queue_iam_member": "queue",
        "google_secret_manager_secret_iam_member": "secrets",
        "google_service_account_iam_member": "service_accounts",
        "google_cloud_run_v2_service_iam_member": "functions",
    }
    for resource, kind in kinds.items():
        body = iam.resource(resource)
        assert compact(body["for_each"]) == f'${{local.by_kind["{kind}"]}}', resource
        assert compact(body["role"]) == "${each.value.role}"
        assert compact(body["member"]) == "${each.value.member}"
    # every kind of grant the declaration uses has a resource
    used = {
        kind
        for g in [*DECLARATION["iam"].values(), *DECLARATION["service_agents"].values()]
        for kind in g
    }
    assert used <= set(kinds.values())
    agents = compact(ROOT_MODULE.locals["service_agents"])
    assert "service-${local.project_number}@gcp-sa-${agent}.iam.gserviceaccount.com" in agents


def test_the_gateway_cannot_read_business_secrets_and_the_worker_can() -> None:
    iam = DECLARATION["iam"]
    accessor = "roles/secretmanager.secretAccessor"
    assert accessor not in iam["gateway"].get("project", [])
    assert accessor in iam["worker"].get("project", [])
    # the gateway reads only the platform's own keys, by name
    assert set(iam["gateway"].get("secrets", {})) <= set(DECLARATION["secrets"])


def test_the_worker_may_act_as_the_invoker() -> None:
    iam = DECLARATION["iam"]
    assert "roles/iam.serviceAccountUser" in iam["worker"]["service_accounts"]["invoker"]
    assert "roles/run.invoker" in iam["invoker"]["functions"]["worker"]
    assert DECLARATION["env"]["NOETL_TASKS_INVOKER"] == "{account:invoker}"


def test_the_gateway_may_manage_scheduler_jobs() -> None:
    assert "roles/cloudscheduler.admin" in DECLARATION["iam"]["gateway"]["project"]
    assert (
        "roles/pubsub.publisher"
        in DECLARATION["service_agents"]["cloudscheduler"]["topics"]["triggers"]
    )


def test_the_pusher_may_invoke_every_push_fed_function() -> None:
    pushed = {k for k, f in DECLARATION["functions"].items() if "push" in f}
    invokable = {
        k
        for k, roles in DECLARATION["iam"]["pusher"]["functions"].items()
        if "roles/run.invoker" in roles
    }
    assert pushed <= invokable
    subscriptions = DECLARATION["service_agents"]["pubsub"]["subscriptions"]
    for name in pushed:
        assert DECLARATION["functions"][name]["push"]["subscription"] in subscriptions
