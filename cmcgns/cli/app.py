"""The `cmcgns` command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cmcgns import __version__
from cmcgns.cli.errors import parse_options, reports_errors
from cmcgns.errors import ConfigError, DataError
from cmcgns.io.atomic import dumps

app = typer.Typer(
    help="CM-CGNS: self-supervised joint learning from chest X-rays and reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def set_option(example: str, what: str) -> typer.models.OptionInfo:
    """`--set key.sub=value`, the one override grammar of every command (repeatable)."""
    return typer.Option(None, "--set", help=f"{what}, KEY.SUB=VALUE (repeatable), e.g. --set {example}")


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="print the version and exit")) -> None:
    if version:
        console.print(__version__)
        raise typer.Exit()


@app.command()
@reports_errors
def synth(
    dataset: str = typer.Argument(
        ...,
        help="a built-in dataset: mimic-cxr, chexpert, rsna, siim, covidx, object-cxr (the datasets of `cmcgns plugins`)",
    ),
    out: Path = typer.Option(..., "--out", help="folder to write the official-layout dataset into"),
    n: int = typer.Option(200, "--n", help="number of studies"),
    seed: int = typer.Option(0),
    image_size: int = typer.Option(256, help="pixels of the written images"),
    workers: int = typer.Option(1),
    corrupt_fraction: float = typer.Option(
        0.0, help="fraction of studies to damage (empty reports, broken/missing images)"
    ),
) -> None:
    """Write a deterministic synthetic dataset in a real dataset's on-disk layout."""
    from cmcgns.data.synth.generate import generate

    summary = generate(
        dataset, out, n, seed=seed, image_size=image_size, workers=workers, corrupt_fraction=corrupt_fraction
    )
    console.print_json(dumps(summary))


@app.command()
@reports_errors
def preprocess(
    dataset: str = typer.Argument(..., help="dataset name (see `cmcgns plugins`), or 'verify'"),
    path: Path | None = typer.Argument(None, help="with 'verify': the preprocessed folder"),
    source: Path | None = typer.Option(None, help="the dataset's official download folder"),
    out: Path | None = typer.Option(None, help="output folder for manifests and the image cache"),
    image_size: int = typer.Option(256),
    workers: int = typer.Option(1),
    splits: Path | None = typer.Option(
        None, help="folder of train.txt/val.txt/test.txt row ids to use instead of drawing splits (e.g. OUT/splits)"
    ),
    option: list[str] | None = set_option("uncertain=zeros", "dataset option"),
) -> None:
    """Official download layout -> manifests, resized image cache and a drop report (or verify a result)."""
    if dataset == "verify":
        from cmcgns.data.preprocess.verify import verify

        if path is None:
            raise ConfigError("usage: cmcgns preprocess verify DIR")
        problems = verify(path)
        for p in problems:
            console.print(f"[red]✗[/] {p}", highlight=False)
        if problems:
            raise typer.Exit(1)
        console.print(f"[green]✓[/] {path} is consistent")
        return
    if source is None or out is None:
        raise ConfigError("preprocess needs --source and --out")
    from cmcgns.plugins.manager import get_registry

    preprocessor = get_registry().get("dataset", dataset).build(parse_options(option))
    result = preprocessor.run(source, out, image_size, workers, **({"splits": splits} if splits else {}))
    console.print(
        f"{dataset}: kept {result.rows} rows {result.splits}, dropped {result.dropped} (see {out}/drop_report.json)"
        f"; split ids in {out}/splits/",
        highlight=False,
        soft_wrap=True,
    )
    if getattr(result, "split_lists", None) and result.split_lists["missing"]:
        lists = result.split_lists
        console.print(
            f"--splits {splits}: {lists['missing']} listed id(s) are not in the data, e.g. "
            f"{', '.join(lists['missing_examples'][:5])} (all counted in {out}/drop_report.json)",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
@reports_errors
def pretrain(
    config: str | None = typer.Option(
        None, "--config", "-c", help="YAML config file, or a packaged config name (see --list-configs)"
    ),
    overrides: list[str] | None = set_option("train.lr=1e-4 --set sampler.options.num_clusters=64", "config override"),
    sampler: str | None = typer.Option(
        None, help="negative sampler plugin, e.g. cm-cgns, in-batch, cluster-ns (starts from its default options)"
    ),
    head: str | None = typer.Option(
        None, help="reconstruction head plugin, e.g. cm-mir, or none (starts from its default options)"
    ),
    resume: str | None = typer.Option(None, help="'auto' (latest checkpoint in run_dir) or a checkpoint path"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="start again in a run_dir that holds an earlier run's checkpoints"
    ),
    allow_config_change: bool = typer.Option(
        False, "--allow-config-change", help="resume although the config differs from the checkpoint's (listed)"
    ),
    allow_world_size_change: bool = typer.Option(
        False,
        "--allow-world-size-change",
        help="resume a checkpoint made with another number of processes (changes the gathered batch)",
    ),
    print_config: bool = typer.Option(False, "--print-config", help="print the resolved config and exit"),
    list_configs: bool = typer.Option(False, "--list-configs", help="list the packaged configs and exit"),
    progress: bool = typer.Option(True, help="rich progress bar on rank 0"),
) -> None:
    """Pretrain image + text encoders with CM-CGNS (torchrun for multi-process DDP).

    Example: cmcgns pretrain -c cm-cgns-vit-b16 --set data.manifest=DIR --set model.text.path=DIR
    """
    from cmcgns.config import dump_config, load_config
    from cmcgns.config.packaged import describe_packaged
    from cmcgns.config.resolve import resolve_components
    from cmcgns.config.schema import PretrainConfig

    if list_configs:
        for name, description in describe_packaged():
            console.print(f"[bold]{name}[/]  {description}", highlight=False)
        return

    switches = [f"sampler.name={sampler}"] if sampler else []
    switches += [f"head.name={head}"] if head else []
    sets = list(overrides or []) + switches  # --set options for the new component apply on top of its defaults
    cfg = resolve_components(load_config(PretrainConfig, config, sets))
    if print_config:
        console.print(dump_config(cfg), highlight=False)
        return
    from cmcgns.training.pretrain import pretrain as run

    summary = run(
        cfg,
        resume=resume,
        progress=progress,
        overwrite=overwrite,
        allow_config_change=allow_config_change,
        allow_world_size_change=allow_world_size_change,
    )
    from cmcgns import distributed

    if distributed.is_main():  # under torchrun every rank returns; one prints
        _print_pretrain_summary(summary, cfg.run_dir)


def _print_pretrain_summary(summary: dict, run_dir: Path) -> None:
    """What a run ended with, each number beside its chance value (cmcgns.training.chance)."""
    from cmcgns.training.chance import format_judgement

    runtime = summary.get("runtime", {})
    wall = f", {runtime['wall_seconds']:.0f} s" if "wall_seconds" in runtime else ""
    console.print(
        f"pretraining finished: {summary['steps']} steps on {summary['device']} ({summary['precision']}{wall}), "
        f"data {summary['data']['source']}",
        highlight=False,
        soft_wrap=True,
    )
    if summary.get("chance"):
        pairs = (summary.get("eval") or {}).get("eval_pairs")
        console.print(
            f"losses at the last logged step; evaluation on {pairs} held-out pairs"
            if pairs
            else "losses at the last logged step",
            highlight=False,
        )
        for line in format_judgement(summary["chance"]):
            console.print(f"  {line}", highlight=False, soft_wrap=True)
    if summary.get("export"):
        console.print(f"  export: {summary['export']['dir']}", highlight=False, soft_wrap=True)
    console.print(f"  summary (every number): {Path(run_dir) / 'summary.json'}", highlight=False, soft_wrap=True)


@app.command()
@reports_errors
def finetune(
    task: str = typer.Option(..., help="downstream task plugin, e.g. rsna-cls, siim-seg"),
    fraction: float = typer.Option(1.0, help="fraction of training labels: 0.01, 0.1, 1.0"),
    seed: int = typer.Option(0, min=0),
    backbone: Path | None = typer.Option(None, help="export/ folder of a pretrain run"),
    data_root: Path = typer.Option(Path("data"), help="folder holding preprocessed datasets (DATA_ROOT/DATASET)"),
    out: Path = typer.Option(Path("runs/finetune")),
    mode: str | None = typer.Option(None, help="linear | finetune (classification)"),
    protocol: str = typer.Option("mgca", help="downstream protocol: mgca (published, early stopping) or fast (CI)"),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu or cuda"),
    synthetic: bool = typer.Option(
        False, "--synthetic", help="generate the datasets the data root lacks (every result row is marked synthetic)"
    ),
    option: list[str] | None = set_option("epochs=5", "task option"),
) -> None:
    """Train and evaluate one downstream task.

    Example: cmcgns finetune --task rsna-cls --fraction 0.01 --backbone RUN/export --set epochs=5
    """
    from cmcgns.benchmark.suite import run_task

    opts = parse_options(option) | ({"mode": mode} if mode else {})
    from cmcgns.training.runtime import select_device

    row = run_task(
        task,
        opts,
        fraction,
        seed,
        out,
        backbone,
        data_root,
        device=str(select_device(device)),
        synthetic=synthetic,
        protocol=protocol,
    )
    from cmcgns import distributed

    if distributed.is_main():  # under torchrun: one rank prints
        console.print_json(dumps(row["metrics"]))


@app.command()
@reports_errors
def benchmark(
    tasks: str | None = typer.Option(None, help="comma-separated task names"),
    fractions: str | None = typer.Option(None, help="comma-separated label fractions [default: 0.01,0.1,1.0]"),
    seeds: str | None = typer.Option(None, help="comma-separated seeds [default: 0,1,2]"),
    backbone: Path | None = typer.Option(None, help="export/ folder of a pretrain run"),
    data_root: Path = typer.Option(Path("data")),
    out: Path = typer.Option(Path("runs/benchmark")),
    expected: Path | None = typer.Option(None, help="YAML of expected values; exit 1 outside tolerance"),
    suite: Path | None = typer.Option(
        None, help="suite YAML (tasks, fractions, seeds, options, expected); flags override it"
    ),
    reference: Path | None = typer.Option(
        None, help="published values to show beside the results, e.g. benchmarks/paper_table.yaml"
    ),
    synthetic_studies: int | None = typer.Option(None, help="studies per synthetic dataset [default: 120]"),
    protocol: str | None = typer.Option(None, help="downstream protocol: mgca (published, default) or fast (CI)"),
    compare_random_init: bool = typer.Option(
        False,
        "--compare-random-init",
        help="also run the suite on a random-init backbone and show it beside each result",
    ),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu or cuda"),
    synthetic: bool = typer.Option(
        False, "--synthetic", help="generate the datasets the data root lacks (every result row is marked synthetic)"
    ),
    option: list[str] | None = set_option("rsna-cls.epochs=5", "task option, prefixed by the task"),
    launcher: str = typer.Option(
        "sequential", help="sequential (this process) or ray (each run a Ray task, local or --ray-address)"
    ),
    ray_address: str | None = typer.Option(
        None, help="an existing Ray cluster (else RAY_ADDRESS, else a local instance started here)"
    ),
    ray_cpus_per_run: int = typer.Option(1, min=1, help="CPUs per run on CPU devices (CUDA runs take 1 GPU)"),
    ray_processes_per_run: int = typer.Option(
        1, min=1, help="with --launcher ray: GPUs (or CPU processes) per detection/segmentation run, under torchrun"
    ),
    rerun: bool = typer.Option(
        False, "--rerun", help="run again the runs OUT/results.jsonl already records (default: skip them)"
    ),
) -> None:
    """Run a suite (tasks x fractions x seeds); JSON lines, mean ± std tables, regression gate.

    Example: cmcgns benchmark --tasks rsna-cls,siim-seg --fractions 0.01,0.1,1 --seeds 0,1,2 --backbone RUN/export
    --set rsna-cls.epochs=5
    """
    from cmcgns.benchmark.run import run_benchmark
    from cmcgns.benchmark.suite_file import SuiteFile, load_suite

    if suite is None and not tasks:
        raise ConfigError("give --tasks or --suite")
    try:
        fraction_list = [float(f) for f in fractions.split(",") if f] if fractions else None
        seed_list = [int(s) for s in seeds.split(",") if s] if seeds else None
    except ValueError as exc:
        raise ConfigError(f"--fractions/--seeds: {exc}") from None
    names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    base = load_suite(suite) if suite else SuiteFile.model_construct(tasks=names)  # validated with the flags below
    spec = base.with_overrides(
        tasks=names,
        fractions=fraction_list,
        seeds=seed_list,
        options=parse_options(option),
        expected=expected,
        synthetic_studies=synthetic_studies,
        synthetic=True if synthetic else None,
        protocol=protocol,
    )
    from cmcgns import distributed
    from cmcgns.benchmark.reference import load_reference
    from cmcgns.benchmark.tables import aligned_table, result_line
    from cmcgns.training.runtime import select_device

    if reference is not None and not any(v is not None for v in load_reference(reference).lookup().values()):
        if distributed.is_main():
            console.print(
                f"{reference}: holds no published values (every entry is null), so no reference column is "
                "shown; enter values with their citation to compare",
                highlight=False,
                soft_wrap=True,
            )
        reference = None

    def show_pass(label: str, summary: list[dict]) -> None:
        console.print(f"\n== {label} ==", highlight=False, soft_wrap=True)
        console.print(aligned_table(summary), highlight=False, soft_wrap=True)

    report = run_benchmark(
        spec,
        out,
        backbone,
        data_root,
        reference,
        device=str(select_device(device)),
        compare_random_init=compare_random_init,
        on_result=lambda r: console.print(result_line(r), highlight=False, soft_wrap=True),
        on_pass=show_pass,
        launcher=launcher,
        rerun=rerun,
        ray_address=ray_address,
        ray_cpus_per_run=ray_cpus_per_run,
        ray_processes_per_run=ray_processes_per_run,
    )
    if distributed.is_main():  # under torchrun: one rank prints; every rank exits with the verdict
        for f in report.failures:
            console.print(f"[bold red]REGRESSION[/] {f}", highlight=False, soft_wrap=True)  # one line each, for CI logs
        console.print("", highlight=False)
        for name in ("results", "markdown", "plot"):
            if name in report.files:
                console.print(f"{name:>8}: {report.files[name]}", highlight=False, soft_wrap=True)
    if report.failures:
        raise typer.Exit(1)


@app.command()
@reports_errors
def plugins(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List registered components: name, kind, plugin, version, source; plugins that failed to load
    are listed with their error. --json adds each component's options (type, default, description),
    the keys `--set sampler.options.KEY=VALUE` accepts."""
    from cmcgns.plugins.manager import get_registry

    registry = get_registry(warn=False)  # the failures are listed here
    rows = [
        {
            "name": c.name,
            "kind": c.kind,
            "plugin": c.plugin,
            "version": c.version,
            "source": c.source,
            "description": c.description,
            "status": "ok",
        }
        for c in registry.components()
    ]
    failed = [
        {
            "name": f.plugin,
            "kind": "plugin",
            "plugin": f.plugin,
            "version": f.version,
            "source": f.source,
            "description": "",
            "status": "failed",
            "error": f.error,
        }
        for f in registry.failures
    ]
    if as_json:
        for row, component in zip(rows, registry.components()):
            row["options"] = component.describe_options()
        typer.echo(dumps(rows + failed, indent=2))
        return
    if console.width >= 140:
        table = Table(title="cmcgns plugins")
        for col in ("name", "kind", "plugin", "version", "source", "description"):
            table.add_column(col)
        for r in rows:
            table.add_row(*(str(r[c]) for c in ("name", "kind", "plugin", "version", "source", "description")))
        console.print(table)
    else:  # one line per component; only the description gives way to a narrow terminal
        typer.echo("\n".join(_compact_table(rows, ("name", "kind", "plugin", "description"), console.width)))
    for f in failed:
        typer.echo(f"FAILED plugin {f['plugin']!r} ({f['source']}): {f['error']}")
    if console.width < 140:
        typer.echo("full descriptions, versions, sources and options: cmcgns plugins --json")


def _compact_table(rows: list[dict], columns: tuple[str, ...], width: int) -> list[str]:
    from cmcgns.io.columns import align_columns

    return align_columns([list(columns)] + [[str(r[c]) for c in columns] for r in rows], width)


@app.command()
@reports_errors
def embed(
    model: Path = typer.Option(..., help="model/ folder of a finished pretrain run (or the run folder)"),
    images: list[Path] | None = typer.Option(None, help="image files or folders (repeatable)"),
    texts: Path | None = typer.Option(None, help="reports: one per line, or .jsonl rows with a text field"),
    out: Path = typer.Option(..., help="output .npy; the row order is written beside it as OUT.index.txt"),
    device: str = typer.Option("auto", help="auto (CUDA when available), cpu or cuda"),
    batch_size: int = typer.Option(32, min=1),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing OUT"),
) -> None:
    """L2-normalised embeddings of images or reports in the space the global loss trained.

    Example: cmcgns embed --model RUN/model --images DIR --out images.npy
    """
    if (images is None) == (texts is None):
        raise DataError("give exactly one of --images or --texts")
    from cmcgns.joint.embed import embed_batches, image_inputs, text_inputs, write_embeddings
    from cmcgns.joint.model import load_model
    from cmcgns.training.runtime import select_device

    joint, _, _ = load_model(model, select_device(device))
    if images is not None:
        files = image_inputs(list(images))
        matrix = embed_batches(files, joint.encode_image, batch_size)
        ids = [str(f) for f in files]
    else:
        ids, reports = text_inputs(texts)
        matrix = embed_batches(reports, joint.encode_text, batch_size)
    index = write_embeddings(out, matrix, ids, overwrite)
    console.print(f"wrote {out} ({matrix.shape[0]} x {matrix.shape[1]}) and {index}", highlight=False)


@app.command("text-model")
@reports_errors
def text_model(
    manifest: Path = typer.Option(..., help="preprocessed mimic-cxr folder (report corpus)"),
    out: Path = typer.Option(...),
    vocab_size: int = typer.Option(1000),
    hidden_size: int = typer.Option(64),
    layers: int = typer.Option(2),
    tokenizer_only: bool = typer.Option(False),
) -> None:
    """Train a WordPiece tokenizer on the reports (and write a small random-init BERT beside it)."""
    from cmcgns.models.tiny_text import report_corpus, train_text_model

    if hidden_size % 2:
        raise DataError("--hidden-size must be even")
    folder = train_text_model(report_corpus(manifest), out, vocab_size, hidden_size, layers, 2, not tokenizer_only)
    console.print(f"wrote {folder}")


def main() -> None:
    app()
