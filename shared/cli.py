"""Command dispatch: `python -m projects.<name> <command> [hydra overrides]`.

The first word picks the command; everything after it goes to Hydra untouched, so Hydra's own
flags (`--help`, `--cfg job`, `-m`) keep working. `sys.argv` is restored before the command
runs, so Lightning's DDP launcher re-executes the same command line for the other ranks.
"""

from __future__ import annotations

import re
import shutil
import signal
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from shared.config import SHARED_CONFIGS, project_config_dir, register_resolvers, searchpath_override
from shared.config_errors import HeldStream, explain, explain_config_value
from shared.errors import Interrupted, PortfolioError, UsageError
from shared.io import write_text
from shared.logs import route_library_logs
from shared.project import Command, Project
from shared.resume import resume_overrides
from shared.runs import INTERRUPTED_FILE, LAST_CHECKPOINT, forget_sweep_dirs, raise_refused_run_dir


def _train(project: Project, cfg: DictConfig) -> None:
    from shared.train import train

    train(project, cfg, Path(HydraConfig.get().runtime.output_dir))


def _evaluate(project: Project, cfg: DictConfig) -> None:
    from shared.evaluate import evaluate_command

    evaluate_command(project, cfg)


def _predict(project: Project, cfg: DictConfig) -> int:
    from shared.predict import predict_command

    return predict_command(project, cfg)


def _export(project: Project, cfg: DictConfig) -> None:
    from shared.export import export_command

    export_command(project, cfg)


def _compare(project: Project, cfg: DictConfig) -> None:
    from shared.compare import compare_command

    compare_command(project, cfg)


def _serve(project: Project, cfg: DictConfig) -> None:
    from shared.serve.command import serve_command

    serve_command(project, cfg)


def _tune(project: Project, cfg: DictConfig) -> int | None:
    from shared.tune.command import tune_command

    return tune_command(project, cfg)


def _promote(project: Project, cfg: DictConfig) -> None:
    from shared.promotion import promote_command

    promote_command(project, cfg)


def _monitor(project: Project, cfg: DictConfig) -> int:
    from shared.monitor.command import monitor_command

    return monitor_command(project, cfg)


COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command("train", "fit a model, evaluate it on val and test, write a run directory", _train),
        Command("evaluate", "score a finished run's model again (latest run, or run=PATH)", _evaluate),
        Command("predict", "predict with a finished run's model: {predict_usage}", _predict),
        Command("compare", "a table of every finished run's metrics, best first", _compare),
        Command("export", "write a finished run's model as ONNX, checked against it (run=PATH, format=onnx)", _export),
        Command("serve", "an HTTP API for a run's model (the promoted run, or run=PATH): /predict, /docs", _serve),
        Command("promote", "mark a run (run=PATH, else the latest) as the one serve uses by default", _promote),
        Command("monitor", "test new inputs (input=FILE|requests) for drift from a run's training data", _monitor),
        Command(
            "tune", "hyperparameter search with Optuna (search=NAME trials=N workers=K), then the best retrained", _tune
        ),
    )
}


def commands_of(project: Project) -> dict[str, Command]:
    """The core's commands with the project's own added or replacing them."""
    return {**COMMANDS, **project.commands()}


def usage(project: Project) -> str:
    """The text for `python -m projects.<name>` with no command or with --help."""
    commands = commands_of(project)
    width = max(len(name) for name in commands)
    lines = [
        f"usage: python -m projects.{project.name} <command> [overrides] [hydra flags]",
        "",
        project.summary,
        "",
        "commands:",
        *(
            f"  {name:<{width}}  {command.summary.format(predict_usage=project.predict_usage)}"
            for name, command in commands.items()
        ),
        "",
        "overrides choose an option of a config group (model=..., experiment=..., trainer=cpu|gpu|ddp)",
        "or set any key (seed=1 trainer.max_epochs=3); -m sweeps over comma-separated values.",
        f"`python -m projects.{project.name} <command> --help` lists the options; --cfg job prints the config.",
    ]
    return "\n".join(lines)


def quote_free_text(override: str, keys: tuple[str, ...]) -> str:
    """`text=it's good, really` → `text='it\\'s good, really'`: Hydra reads a free-text value as one string.

    Values already quoted are left alone; `${` is escaped so OmegaConf does not read it as an interpolation.
    """
    key, separator, value = override.partition("=")
    if not separator or key not in keys or (len(value) > 1 and value[0] == value[-1] and value[0] in "'\""):
        return override
    # Hydra unescapes backslashes only before a quote: double those, escape the quotes, and `${` for OmegaConf.
    escaped = re.sub(r"(\\*)('|$)", lambda match: 2 * match[1] + ("\\'" if match[2] else ""), value)
    escaped = escaped.replace("${", "\\${")
    return f"{key}='{escaped}'"


def run(project: Project, argv: list[str] | None = None) -> int:
    """Run one command line and return its exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] in ("-h", "--help", "help"):
        print(usage(project))
        return 0 if arguments else 2
    name, overrides = arguments[0], [quote_free_text(item, project.free_text_keys) for item in arguments[1:]]
    commands = commands_of(project)
    if name not in commands:
        print(f"error: unknown command '{name}'. Valid commands: {', '.join(commands)}.", file=sys.stderr)
        print(f"  see: python -m projects.{project.name} --help", file=sys.stderr)
        return 2
    try:
        config_dir = project_config_dir(project.name, project.config_dir)
    except PortfolioError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    # A project's own configs/<project>/<command>.yaml, else the shared configs/shared/base_<command>.yaml.
    config_name, extra = name, []
    if not (config_dir / f"{name}.yaml").is_file():
        if not (SHARED_CONFIGS / f"base_{name}.yaml").is_file():
            print(f"error: {project.name} has no '{name}' command (no {config_dir / name}.yaml).", file=sys.stderr)
            return 2
        config_dir, config_name, extra = SHARED_CONFIGS, f"base_{name}", [f"project={project.name}"]
    try:
        _check_run_name(overrides)
        if name == "train":
            overrides = resume_overrides(project, overrides)
            # `data.extra=FILE` (labelled rows added to the train split) is the core's key, in no data config
            overrides = [f"++{item}" if item.startswith("data.extra=") else item for item in overrides]
        elif name == "tune":
            overrides = tune_overrides(overrides)
        else:  # `data.path=moved.csv` patches a finished run's data config, which the command's own config lacks
            overrides = [f"++{item}" if item.startswith("data.") else item for item in overrides]
    except PortfolioError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    register_resolvers()
    forget_sweep_dirs()
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")  # Lightning-internal noise
    exit_code = 0
    original_argv = [sys.argv[0] if sys.argv else f"projects.{project.name}", name, *overrides]
    stderr = sys.stderr
    held = HeldStream(stderr)  # what Hydra says while it composes, rewritten if the command line does not compose

    @hydra.main(version_base="1.3", config_path=str(config_dir), config_name=config_name)
    def task(cfg: DictConfig) -> None:
        nonlocal exit_code
        stderr.write(held.release())
        sys.stderr = stderr  # the command itself writes to the real stream
        sys.argv = original_argv  # what Lightning's DDP launcher re-executes for the other ranks
        _pin_run_dir()
        route_library_logs()
        try:
            raise_refused_run_dir()  # a run folder that could not be made: its error, here rather than in Hydra
            exit_code = commands[name].run(project, cfg) or 0
        except (PortfolioError, OmegaConfBaseException) as error:  # OmegaConf's: a bad `${...}` on the command line
            refusal = error if isinstance(error, PortfolioError) else explain_config_value(error, project.name, name)
            print(f"error: {refusal}", file=sys.stderr)
            exit_code = refusal.exit_code
            _discard_unfinished_run(name)
        except (Interrupted, KeyboardInterrupt) as stop:
            exit_code = stop.exit_code if isinstance(stop, Interrupted) else 128 + signal.SIGINT
            _report_interruption(project, name)
        except Exception:  # a bug, not the user's mistake: its traceback is shown, and no half-written run is left
            _discard_unfinished_run(name)
            raise

    saved_argv = sys.argv
    sys.argv = [original_argv[0], *_with_overrides(overrides, [*extra, searchpath_override()])]
    sys.stderr = held  # type: ignore[assignment]
    try:
        task()
    except SystemExit as stop:  # Hydra exits itself for --help, --cfg and config errors
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        said = held.release()  # empty once the command has run: it released the stream
        if code == 1 and said and "Traceback (most recent call last)" not in said:  # the command line did not compose
            refusal = explain(said, project.name, name)
            print(f"error: {refusal}", file=stderr)
            return refusal.exit_code
        stderr.write(said)
        return code
    finally:
        sys.argv = saved_argv
        sys.stderr = stderr
        stderr.write(held.release())  # --cfg, --info: what Hydra wrote before returning without running the command
    return exit_code


def _check_run_name(overrides: list[str]) -> None:
    """`name=` becomes a folder under runs/<project>/: refuse one that is not a plain folder name before Hydra runs."""
    for override in overrides:
        key, separator, value = override.lstrip("+~").partition("=")
        if separator and key == "name" and value not in ("", "null"):
            value = value.strip("'\"")
            if Path(value).name != value or value in (".", ".."):
                raise UsageError(
                    f"name={value} is not a plain folder name: it would put the run outside runs/.",
                    "use letters, digits, '-' and '_' only, e.g. name=try-1.",
                )


def tune_overrides(arguments: list[str]) -> list[str]:
    """`tune`'s own keys (base_tune.yaml's) stay; every other override is for the trials' train, so it goes into
    `train=[...]`: `tune trials=8 trainer=cpu data.batch_size=256` trains each trial with those two."""
    from omegaconf import OmegaConf

    own = set(OmegaConf.load(SHARED_CONFIGS / "base_tune.yaml")) - {"defaults"}
    kept, train = [], []
    for argument in arguments:
        key = argument.lstrip("+~").partition("=")[0]
        if argument.startswith("-") or "=" not in argument or key in own or key.startswith("hydra"):
            kept.append(argument)
        else:
            train.append(argument)
    if not train:
        return kept
    quoted = ",".join("'" + item.replace("\\", "\\\\").replace("'", "\\'") + "'" for item in train)
    existing = [item for item in kept if item.partition("=")[0] == "train"]
    if existing:
        raise UsageError(
            f"{existing[0]} and train overrides ({' '.join(train)}) both set the trials' train overrides.",
            "give them one way: either as plain overrides or as train=[...].",
        )
    return [*kept, f"train=[{quoted}]"]


def _with_overrides(arguments: list[str], added: list[str]) -> list[str]:
    """Insert overrides beside the user's own: Hydra's parser wants all overrides in one run of arguments,
    so `model=mlp --cfg job` and `--cfg job model=mlp` both keep working."""
    first = next((i for i, item in enumerate(arguments) if "=" in item and not item.startswith("-")), len(arguments))
    return [*arguments[:first], *added, *arguments[first:]]


def _pin_run_dir() -> None:
    """Replace `hydra.run.dir` (an interpolation that makes a new name each time it is read) by the
    directory this job got. Lightning's DDP launcher reads it to send the other ranks to the same run."""
    hydra_config = HydraConfig.get()
    with read_write(hydra_config), open_dict(hydra_config):
        hydra_config.run.dir = hydra_config.runtime.output_dir


def _discard_unfinished_run(command: str) -> None:
    """A train that failed (a user error, or a crash) leaves no run directory when it holds nothing but Hydra's files
    and what it wrote before the failure; one with checkpoints (resumable, or a resumed run) is kept."""
    if command != "train" or not HydraConfig.initialized():
        return
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if run_dir.is_dir() and not any(run_dir.rglob("*.ckpt")) and not (run_dir / "metrics.json").exists():
        shutil.rmtree(run_dir, ignore_errors=True)


def _report_interruption(project: Project, command: str) -> None:
    """Say how to continue an interrupted train, and mark its folder: `INTERRUPTED` beside its checkpoints."""
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None
    if command != "train" or run_dir is None or not run_dir.is_dir():
        print("interrupted", file=sys.stderr)
        return
    if (run_dir / LAST_CHECKPOINT).is_file():
        resume = f"python -m projects.{project.name} train resume={run_dir}"
        write_text(run_dir / INTERRUPTED_FILE, resume + "\n")
        print(f"interrupted: resume with {resume}", file=sys.stderr)
    else:
        _discard_unfinished_run(command)
        print("interrupted before the first checkpoint: nothing to resume; train again", file=sys.stderr)


def main(project: Project) -> None:
    """Entry point for `projects/<name>/__main__.py`."""
    sys.exit(run(project))
