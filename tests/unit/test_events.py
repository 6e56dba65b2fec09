"""events.jsonl: appended as things happen, counted into summary.json's totals."""

import json

from seqgan_ray.events import EventLog, totals


def _e(t, event, **fields):
    return {"t": t, "event": event, **fields}


def test_totals_count_every_kind_and_the_wall_time_of_every_process():
    events = [
        _e(100, "start", attempt=1, resume=False), _e(110, "step"), _e(112, "rollout_restart", worker=0, restarts=2),
        _e(120, "stop", reason="ActorDiedError"), _e(121, "role_died", role="learner"),
        _e(121, "role_died", role="discriminator"), _e(122, "recovery", attempt=2),
        _e(130, "start", attempt=2, resume=True), _e(150, "step"),  # then killed: no stop
        _e(500, "start", attempt=1, resume=True), _e(520, "stop", reason="ActorDiedError"),
        _e(521, "role_died", role="learner"), _e(521, "gave_up", reason="retries used up"),
        _e(900, "start", attempt=1, resume=True), _e(910, "rollout_restart", worker=1, restarts=1), _e(930, "finish"),
    ]
    out = totals(events)
    assert out.restarts == {"rollout": 3, "learner": 2, "discriminator": 1}
    assert (out.recoveries, out.gave_up, out.resumes, out.attempts) == (1, 1, 2, 4)
    assert out.wall_time_s == (150 - 100) + (521 - 500) + (930 - 900)  # the gaps between processes are not
    assert totals(events, now=940).wall_time_s == out.wall_time_s + 10  # the process still running


def test_a_run_from_before_the_file_starts_from_its_checkpoints_totals():
    out = totals([_e(5, "before", rollout_restarts=4, wall_time_s=300.0), _e(10, "start", attempt=1, resume=True),
                  _e(20, "finish")])
    assert (out.restarts["rollout"], out.wall_time_s, out.resumes) == (4, 310.0, 1)


def test_appended_lines_survive_a_line_cut_short(tmp_path):
    log = EventLog(tmp_path)
    log.append("start", attempt=1, resume=False)
    with open(log.path, "a") as f:
        f.write('{"t": 1, "event": "st')  # a kill in the middle of a line
    assert [e["event"] for e in log.read()] == ["start"]
    log.append("step", phase="adversarial", step=1)  # the next process's lines are whole
    assert [e["event"] for e in log.read()] == ["start", "step"]
    assert json.loads(log.path.read_text().splitlines()[0])["attempt"] == 1
    log.reset()
    assert log.read() == [] and not log.exists()
