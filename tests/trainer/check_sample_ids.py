"""Checks the sample-id logs of a (possibly killed and resumed) training stage.

    check_sample_ids.py STAGE_DIR N_TRAIN BATCH MAX_STEPS [--same-as OTHER_STAGE_DIR]

STAGE_DIR/sample_ids.rank<R>.txt (run.log_sample_ids): one line per step '<global_step> <id> ...'
with that rank's slice of the global batch, appended across resumes; a line '# resume <S>' marks
a resume at step S. The steps a killed run logged at or after S were trained again after the
resume, so the later lines replace them. What must hold (EpochSampler drops the last partial
batch of an epoch, so an epoch is N_TRAIN // BATCH steps):
  - every rank of every run logged each step of that run (no gap in the log); a run's steps
    end where the next resume starts, and rank 0 (part of every run) marks every resume;
  - each step's slices, over all ranks, hold BATCH distinct ids;
  - each complete epoch holds (N_TRAIN // BATCH) * BATCH distinct ids of [0, N_TRAIN): no sample
    twice, none missing except the N_TRAIN % BATCH of the dropped partial batch;
  - with --same-as: every step's set of ids equals the other run's (world-size independence).
Prints one line per epoch and exits 1 on the first violated property. The trainer flushes the
log every step, so the lines of a run killed by kill -9 are all on disk.
"""
import glob
import os
import re
import sys


def read_segments(path):
    """Returns [(start_step, {global_step: [ids]})]: one segment per run of this rank, split at
    the '# resume S' markers (start 0 for the first run). Within a segment a later line for the
    same step replaces an earlier one; text before a marker on its line is a record the killed
    run left unfinished and is dropped."""
    segments = [(0, {})]
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            body, hash_, comment = line.partition("#")
            if hash_:
                m = re.match(r"\s*resume\s+(\d+)\s*$", comment)
                if not m:
                    raise SystemExit(f"{path}:{line_no}: unexpected comment '#{comment.strip()}'")
                segments.append((int(m.group(1)), {}))
                continue
            words = body.split()
            if words:
                segments[-1][1][int(words[0])] = [int(w) for w in words[1:]]
    if not segments[0][1]:
        segments.pop(0)  # this rank joined at a resume
    return segments


def effective_steps(stage_dir, max_steps):
    """{global_step: (ranks, ids)} as trained: each step from the last run that reached it. A
    resume is a job-wide event (rank 0 takes part in every run and logs every resume); a run's
    steps end where the next run resumed. Exits naming the first gap in a rank's log."""
    paths = sorted(glob.glob(os.path.join(stage_dir, "sample_ids.rank*.txt")))
    if not paths:
        raise SystemExit(f"{stage_dir}: no sample_ids.rank*.txt (was run.log_sample_ids set?)")
    logs = {int(re.search(r"rank(\d+)\.txt$", p).group(1)): read_segments(p) for p in paths}
    if 0 not in logs:
        raise SystemExit(f"{stage_dir}: no log of rank 0")
    starts = [start for start, _ in logs[0]]
    steps = {}
    if not starts or starts[0] != 0:
        raise SystemExit(
            f"{stage_dir}/sample_ids.rank0.txt: steps 0..{(starts[0] if starts else max_steps) - 1} "
            "missing (the log starts at the first resume): the killed run's lines were not on "
            "disk when its checkpoint was written (the trainer must flush the sample-id log at "
            "least before each checkpoint)")
    ends = starts[1:] + [max_steps]
    for k, (begin, end) in enumerate(zip(starts, ends)):
        # Which segment of each rank belongs to run k: the one with the same start, taken in order.
        taken = []
        for r, segs in sorted(logs.items()):
            nth = sum(1 for s in starts[:k] if s == begin)
            match = [recs for start, recs in segs if start == begin]
            if len(match) > nth:
                taken.append((r, match[nth]))
        for s in range(begin, end):
            ids, ranks = [], []
            for r, recs in taken:
                if s not in recs:
                    raise SystemExit(
                        f"{stage_dir}/sample_ids.rank{r}.txt: step {s} missing from the run that "
                        f"started at step {begin} (resumes at {starts[1:]}); steps before a resume "
                        "point missing means the killed run's lines were not on disk when its "
                        "checkpoint was written")
                ids += recs[s]
                ranks.append(r)
            steps[s] = (ranks, ids)
    return steps, starts[1:]


def main():
    args = sys.argv[1:]
    other = None
    if "--same-as" in args:
        i = args.index("--same-as")
        other = args[i + 1]
        del args[i:i + 2]
    if len(args) != 4:
        raise SystemExit(__doc__)
    stage_dir, n, batch, max_steps = args[0], int(args[1]), int(args[2]), int(args[3])
    steps, resumes = effective_steps(stage_dir, max_steps)
    per_epoch = n // batch
    step_sets = {}
    for s in range(max_steps):
        ranks, ids = steps[s]
        if len(ids) != batch or len(set(ids)) != batch:
            raise SystemExit(f"{stage_dir}: step {s} holds {len(ids)} ids ({len(set(ids))} distinct) "
                             f"over ranks {ranks}, expected {batch} distinct")
        step_sets[s] = frozenset(ids)
    for e in range(max_steps // per_epoch):
        ids = [i for s in range(e * per_epoch, (e + 1) * per_epoch) for i in step_sets[s]]
        distinct = set(ids)
        bad = [i for i in distinct if not 0 <= i < n]
        if len(ids) != len(distinct):
            dups = len(ids) - len(distinct)
            raise SystemExit(f"{stage_dir}: epoch {e}: {dups} sample(s) seen twice")
        if bad:
            raise SystemExit(f"{stage_dir}: epoch {e}: ids outside [0, {n}): {bad[:5]}")
        if len(distinct) != per_epoch * batch:
            raise SystemExit(f"{stage_dir}: epoch {e}: {len(distinct)} distinct ids, expected "
                             f"{per_epoch * batch}")
        resumed = [s for s in resumes if e * per_epoch <= s < (e + 1) * per_epoch]
        print(f"{stage_dir}: epoch {e} (steps {e * per_epoch}..{(e + 1) * per_epoch - 1}"
              f"{', resumed at step ' + ','.join(map(str, resumed)) if resumed else ''}): "
              f"{len(distinct)} distinct ids, none twice, "
              f"{n - len(distinct)} left out (the dropped partial batch is {n % batch})")
    if other is not None:
        o, _ = effective_steps(other, max_steps)
        for s in range(max_steps):
            theirs = frozenset(o[s][1])
            if theirs != step_sets[s]:
                raise SystemExit(f"{stage_dir} vs {other}: step {s} holds different samples")
        print(f"{stage_dir}: every step holds the same samples as {other}")


if __name__ == "__main__":
    main()
