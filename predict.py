"""Estimate normals of a point cloud: ``python predict.py scan.ply`` (see ``--help``).

Thin wrapper around :func:`pointnormals.app.main`: reads ``.ply .pcd .xyz .xyzn .pts
.txt``, runs the shipped O(3)-equivariant TF-PointNet++ (or ``--method pca``) on CPU or
CUDA (``--device auto``), and writes ``scan_normals.ply`` beside the input.
"""

import sys

from pointnormals.app import main

if __name__ == "__main__":
    sys.exit(main())
