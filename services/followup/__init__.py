"""The monthly follow-up (comments, åtgärder, förvaltningens prognos, approvals, audit).

Read with :func:`services.followup.read.load_follow_up`; write with
:mod:`services.followup.write`. The tables live in the snapshot database (migration 0002).
"""
