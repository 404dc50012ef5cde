"""The contract suite: one corpus of cases, run through every door of logx-mock."""
