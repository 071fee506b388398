"""Development support: the real processes the tests, the benchmark and the demo start.

Nothing shipped imports it: the images and the wheel hold `app/`, `training/`, `control/` and
`kernel/` only, and a unit test checks that none of them imports this package.
"""
