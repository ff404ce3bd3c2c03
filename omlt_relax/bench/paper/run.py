"""Running the paper suite: one job per network, resumable, several processes on one folder
(see :mod:`omlt_relax.bench.paper`)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from omlt_relax.bench.paper.measure import measure_paper
from omlt_relax.bench.paper.protocol import (
    Job,
    PaperConfig,
    PaperData,
    get_paper_variant,
    jobs_of,
    paper_data,
    paper_network,
)
from omlt_relax.bench.paper.report import load_records, note_refused, write_report
from omlt_relax.bench.paper.training import TrainedNet, epochs_of, train_paper
from omlt_relax.bench.results import write_json
from omlt_relax.bench.suite import environment as suite_environment
from omlt_relax.files import save_torch_atomic
from omlt_relax.guards import NumericalRangeError, TrainingDivergedError
from omlt_relax.threads import single_thread


def environment() -> dict[str, Any]:
    """The suite's machine record plus the Gurobi version (if installed) and the load average."""
    env = suite_environment()
    try:
        import gurobipy

        env["gurobi"] = ".".join(map(str, gurobipy.gurobi.version()))
    except Exception:  # an optional solver: any failure means "not available"
        env["gurobi"] = None
    env["load_avg_1m"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return env


class BaseNotTrainedError(FileNotFoundError):
    """A fine-tuning job whose unregularized network is not (yet) in the output folder."""


def base_job(job: Job) -> Job:
    """The unregularized job of the same function, depth and seed."""
    return Job(job.function, job.depth, job.seed, "none", 0.0)


def _stored(path: Path, cfg: PaperConfig, full: bool = False) -> Any:
    """The saved network at ``path`` if it was trained with ``cfg``'s settings (its state dict,
    or the whole record with ``full``), else ``None``."""
    if not path.is_file():
        return None
    saved = torch.load(path, weights_only=False)
    if saved.get("train_key") != cfg.train_key():
        return None
    return saved if full else saved["state"]


def train_job(job: Job, cfg: PaperConfig, out: Path,
              data_cache: dict[tuple[str, int], PaperData],
              log: Callable[[str], None] | None = None,
              progress: Callable[[int], None] | None = None) -> tuple[TrainedNet, bool]:
    """The job's network: the one stored in ``out/models`` if it was trained with ``cfg``'s
    settings, else trained now (a fine-tuning from the stored unregularized network) and stored
    atomically. Returns it and whether it was stored before.

    Raises :class:`BaseNotTrainedError` for a fine-tuning whose unregularized network is not
    stored."""
    (out / "models").mkdir(parents=True, exist_ok=True)
    dkey = (job.function, job.seed)
    if dkey not in data_cache:
        data_cache.clear()
        data_cache[dkey] = paper_data(job.function, job.seed, cfg.n_train, cfg.n_val, cfg.n_test)
    data = data_cache[dkey]
    mpath = out / "models" / f"{job.key}.pt"
    saved = _stored(mpath, cfg, full=True)
    if saved is not None:
        model = paper_network(data.x_train.shape[1], job.depth, cfg.width, job.seed)
        model.load_state_dict(saved["state"])
        trained = TrainedNet(model, saved["best_epoch"], saved["best_val_mse"],
                             saved["train_time"], saved["history"])
    else:
        init = None
        if get_paper_variant(job.variant).finetunes:
            init = _stored(out / "models" / f"{base_job(job).key}.pt", cfg)
            if init is None:
                msg = f"{job.key}: the unregularized network {base_job(job).key} is not trained"
                raise BaseNotTrainedError(msg)
        trained = train_paper(job, cfg, data, progress, init=init)
        save_torch_atomic({"state": trained.model.state_dict(), "train_key": cfg.train_key(),
                           "best_epoch": trained.best_epoch, "best_val_mse": trained.best_val_mse,
                           "train_time": trained.train_time, "history": trained.history}, mpath)
    if log is not None:
        log(f"  trained in {trained.train_time:.0f} s (best epoch {trained.best_epoch}, "
            f"val MSE {trained.best_val_mse:.3g})")
    return trained, saved is not None


def run_job(job: Job, cfg: PaperConfig, out: Path, data_cache: dict[tuple[str, int], PaperData],
            log: Callable[[str], None] | None = None,
            progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train (or reuse the stored network of) one job, measure it, write ``jobs/<key>.json``."""
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    trained, reused = train_job(job, cfg, out, data_cache, log, progress)
    data = data_cache[(job.function, job.seed)]
    solved = _solved_before(out / "jobs" / f"{job.key}.json", cfg) if reused else None
    t0 = time.perf_counter()
    meas = measure_paper(trained.model, data, cfg, log, solved)
    rec = {"job": asdict(job), "key": job.key, "train_key": cfg.train_key(),
           "time_limit": cfg.time_limit, "mip_gap": cfg.mip_gap,
           "train_time": trained.train_time, "best_epoch": trained.best_epoch,
           "best_val_mse": trained.best_val_mse, "measure_time": time.perf_counter() - t0,
           "environment": environment(), **meas}
    write_json(out / "jobs" / f"{job.key}.json", rec)
    return rec


def stored_networks(cfg: PaperConfig, out_dir: str | os.PathLike[str]) -> list[str]:
    """The keys of ``cfg``'s jobs whose network is stored in ``out_dir/models`` and was trained
    with ``cfg``'s settings (so a run measures it without training it again)."""
    models = Path(out_dir) / "models"
    return [j.key for j in jobs_of(cfg) if _stored(models / f"{j.key}.pt", cfg) is not None]


def _solved_before(path: Path, cfg: PaperConfig) -> dict[str, dict[str, Any]] | None:
    """The MILP results of a job's earlier record, if it measured the stored network with the
    same training, time limit and MIP gap (so they hold for the network about to be measured)."""
    rec = _read_record(path)
    if rec is None:
        return None
    if (rec.get("train_key"), rec.get("time_limit"), rec.get("mip_gap")) != (
            cfg.train_key(), cfg.time_limit, cfg.mip_gap):
        return None
    return rec.get("milp")


def _read_record(path: Path) -> dict[str, Any] | None:
    """A job's earlier record as it is on disk (``None`` if missing or torn)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _done(path: Path, cfg: PaperConfig) -> bool:
    """The job's record holds every MILP ``cfg`` asks for, measured under its settings."""
    milp = _solved_before(path, cfg)
    return milp is not None and all(
        f in milp and all(s in milp[f] for s in cfg.solvers) for f in cfg.formulations)


def _claim(lock: Path) -> bool:
    """Create ``lock`` holding this process's id; take over a lock whose process is gone.

    Only for processes of one machine (the id is checked with ``os.kill(pid, 0)``). A lock that
    is still empty is being written by its owner, unless it is older than a minute.
    """
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                text = lock.read_text().strip()
                if not text:
                    if time.time() - lock.stat().st_mtime < 60:
                        return False
                    raise ValueError("an empty lock left behind")
                os.kill(int(text.split()[0]), 0)
            except FileNotFoundError:
                continue  # released meanwhile: try again
            except (OSError, ValueError):
                lock.unlink(missing_ok=True)  # its process died: the job is free again
                continue
            return False
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        return True
    return False


def run_paper(cfg: PaperConfig, out_dir: str | os.PathLike[str],
              log: Callable[[str], None] | None = print, progress: bool = True,
              client: Any = None, train_only: bool = False) -> list[dict]:
    """Run every job of ``cfg`` not yet done in ``out_dir`` (resumable), then write the report.

    A job is claimed with an ``O_EXCL`` lock file, so several processes may run on one folder.
    With ``client`` (a :class:`distributed.Client`) the jobs run on its Dask workers instead
    (:func:`run_paper_dask`). Returns the records of all finished jobs of ``cfg``.

    ``train_only``: train and store every network of ``cfg`` not stored yet, solve no MILP and
    write no record (e.g. the unregularized networks that fine-tunings start from, without
    their baseline MILPs, the time limit once per solver); a later run without it measures
    the stored networks without training them again.
    """
    out = Path(out_dir)
    if train_only and client is not None:
        msg = "train_only runs in this process: drop the Dask client (--jobs 1, no --scheduler)"
        raise ValueError(msg)
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    write_json(cfg_path, {"config": cfg.to_dict(), "environment": environment()})

    def finished(job: Job) -> bool:
        """Nothing left to do for ``job``: its network stored (``train_only``), else measured."""
        if train_only:
            return _stored(out / "models" / f"{job.key}.pt", cfg) is not None
        return _done(out / "jobs" / f"{job.key}.json", cfg)

    todo = [j for j in jobs_of(cfg) if not finished(j)]
    # fine-tunings start from a trained unregularized network: run them after the others
    todo.sort(key=lambda j: get_paper_variant(j.variant).finetunes)
    cache: dict[tuple[str, int], PaperData] = {}
    if log is not None:
        what = "to train (no MILPs)" if train_only else "to run"
        log(f"paper suite: {len(jobs_of(cfg))} jobs, {len(todo)} {what}, results in {out}")
    if client is not None:
        run_paper_dask(cfg, out, todo, client, log)
        write_report(out, cfg)
        return load_records(out, cfg)
    for i, job in enumerate(todo, 1):
        lock = out / "jobs" / f".{job.key}.lock"
        if not _claim(lock):
            if log is not None:
                log(f"[{i}/{len(todo)}] {job.key}: running elsewhere (lock {lock}), skipped")
            continue
        if finished(job):  # finished elsewhere meanwhile
            lock.unlink(missing_ok=True)
            continue
        try:
            if log is not None:
                log(f"[{i}/{len(todo)}] {job.key}")
            total = epochs_of(get_paper_variant(job.variant), cfg.epochs)
            with tqdm(total=total, desc=job.key, unit="epoch", leave=False,
                      disable=not progress) as bar:
                if train_only:
                    train_job(job, cfg, out, cache, log, bar.update)
                    continue
                run_job(job, cfg, out, cache, log, bar.update)
            note_refused(out, job.key, None)  # refused by an earlier run, measured now
        except BaseNotTrainedError as e:
            if log is not None:
                log(f"  skipped: {e}; run it again once that network is trained")
        except (NumericalRangeError, TrainingDivergedError) as e:
            # this network cannot be measured soundly (the guards' clear error): note it and go
            # on, so one refusal does not stop a long run (nor every rerun at the same job)
            refused = note_refused(out, job.key, f"{type(e).__name__}: {e}")
            if log is not None:
                log(f"  refused: {e}; noted in {refused}, the run goes on")
        finally:
            lock.unlink(missing_ok=True)
        write_report(out, cfg)
    write_report(out, cfg)
    return load_records(out, cfg)


# -- on Dask ----------------------------------------------------------------------------------
#: Data sets kept by a Dask worker process between its jobs.
_WORKER_DATA: dict[tuple[str, int], PaperData] = {}


def remote_job(job: Job, cfg: PaperConfig, saved_model: dict[str, Any] | None,
               saved_record: dict[str, Any] | None = None,
               base_model: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`run_job` on a Dask worker, in a scratch folder (no shared file system needed).

    ``saved_model`` is the job's stored network, if the submitting machine has one,
    ``saved_record`` its earlier record (whose MILPs are kept, as in a local run) and
    ``base_model`` the stored unregularized network a fine-tuning starts from. Returns the
    record and the stored network for the submitting process to write.
    """
    import tempfile

    single_thread()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        mpath = scratch / "models" / f"{job.key}.pt"
        mpath.parent.mkdir(parents=True)
        if base_model is not None:
            torch.save(base_model, mpath.with_name(f"{base_job(job).key}.pt"))
        if saved_model is not None:
            torch.save(saved_model, mpath)
            if saved_record is not None:
                (scratch / "jobs").mkdir()
                write_json(scratch / "jobs" / f"{job.key}.json", saved_record)
        try:
            rec = run_job(job, cfg, scratch, _WORKER_DATA)
        except (NumericalRangeError, TrainingDivergedError) as e:
            # deterministic: a retry would train again to be refused again. Return the refusal
            # and the trained network (if any) for the submitting process to note and keep.
            model = torch.load(mpath, weights_only=False) if mpath.is_file() else None
            return {"refused": f"{type(e).__name__}: {e}", "model": model}
        return {"rec": rec, "model": torch.load(mpath, weights_only=False)}


def run_paper_dask(cfg: PaperConfig, out: Path, todo: list[Job], client: Any,
                   log: Callable[[str], None] | None = None) -> list[Any]:
    """Run ``todo`` on a Dask client (:mod:`omlt_relax.bench.dask_runner`); this process alone
    writes ``jobs/<key>.json`` and ``models/<key>.pt`` as results stream in. A fine-tuning is
    sent with its stored unregularized network, or submitted once that network's job (in the
    same run) has finished; one whose unregularized network is neither stored nor in the run is
    skipped, as in a local run. A network the numeric guards refuse is noted in
    ``refused/<key>.txt`` and kept, as in a local run (not retried: the refusal is
    deterministic). A job whose worker dies is rescheduled by Dask; one that still fails is
    logged, listed in ``failed.json`` and run again by the next call. Returns the failures."""
    from omlt_relax.bench.dask_runner import Job as DaskJob
    from omlt_relax.bench.dask_runner import run_jobs

    (out / "models").mkdir(parents=True, exist_ok=True)

    def dask_job(job: Job) -> DaskJob:
        """The job with what its worker needs: its stored network and record, if any, else
        (a fine-tuning) the stored unregularized network, if any."""
        saved = _stored(out / "models" / f"{job.key}.pt", cfg, full=True)
        record = _read_record(out / "jobs" / f"{job.key}.json") if saved is not None else None
        base = None
        if saved is None and get_paper_variant(job.variant).finetunes:
            base = _stored(out / "models" / f"{base_job(job).key}.pt", cfg, full=True)
        return DaskJob(job.key, remote_job, (job, cfg, saved, record, base))

    def note(msg: str) -> None:
        if log is not None:
            log(msg)

    keys = {j.key for j in todo}
    waiting: dict[str, list[Job]] = {}  # unregularized job -> fine-tunings waiting for it
    jobs = []
    for job in todo:
        dj = dask_job(job)
        saved, base = dj.args[2], dj.args[4]
        if saved is None and base is None and get_paper_variant(job.variant).finetunes:
            bkey = base_job(job).key
            if bkey in keys:
                waiting.setdefault(bkey, []).append(job)
            else:
                note(f"{job.key}: skipped: the unregularized network {bkey} is not trained; "
                     "run it again once that network is trained")
            continue
        jobs.append(dj)
    failed: dict[str, str] = {}

    def on_result(key: str, value: dict[str, Any]) -> list[DaskJob]:
        mpath = out / "models" / f"{key}.pt"
        if value["model"] is not None:
            save_torch_atomic(value["model"], mpath)
        if "refused" in value:  # as in a local run: noted, kept, measured again by a rerun
            refused = note_refused(out, key, value["refused"])
            note(f"{key}: refused: {value['refused']}; noted in {refused}, the run goes on")
        else:
            write_json(out / "jobs" / f"{key}.json", value["rec"])
            note_refused(out, key, None)  # refused by an earlier run, measured now
            note(f"{key}: done")
        follow = waiting.pop(key, [])
        if value["model"] is None:  # diverged: nothing to fine-tune from
            for j in follow:
                note(f"{j.key}: skipped: its unregularized network {key} was refused")
            return []
        return [dask_job(j) for j in follow]

    def on_failure(key: str, error: str) -> None:
        failed[key] = error
        note(f"{key}: FAILED ({error}); run the same command again to retry it")
        for j in waiting.pop(key, []):
            note(f"{j.key}: skipped: its unregularized network {key} failed")

    failures = run_jobs(client, jobs, on_result, on_failure)
    write_json(out / "failed.json", failed)
    return failures
