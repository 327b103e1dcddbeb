"""`vidgen demo` (`make demo`): train JDM at demo scale on an easy shapes-world set and show what it learned.

- cli.py       the command: train (`exp=jdm_cogvideox preset=demo`), sample, judge, write the page
- generate.py  a video and its mask from each clip's caption, through the public sampling hooks
- judge.py     the shapes world's exact detector: box IoU of the captioned shapes, generated-mask IoU
- table3.py    JDM Table 3 in `vidgen report`'s layout with an "ours (demo scale)" row
- page.py      the self-contained `index.html` (animated clips, scores, loss curve, Table 3)
"""
