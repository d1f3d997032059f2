"""Maze layouts and wall generation, shared by every body that runs in a maze (point, ant, ...).

A layout is a grid of characters: `1` wall, `0` free, `R` the start cell, `G` a goal cell.
Row index i is world x, column j is world y, the centre of cell (i, j) is (i * s, j * s) for a
cell size s, and each wall cell is a box of half-size (s/2, s/2, s/4) centred at height s/4.
Runs of wall cells are merged into fewer, larger boxes (the same occupied volume) because the
physics pipelines test every wall box against every colliding body geom on every step.

Each episode starts at the centre of the R cell and draws its goal uniformly among the centres
of the G cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

LAYOUTS = {
    "u": (
        "11111",
        "1RGG1",
        "111G1",
        "1GGG1",
        "11111",
    ),
    "big": (
        "11111111",
        "1RG11GG1",
        "1GG1GGG1",
        "11GGG111",
        "1GG1GGG1",
        "1G1GG1G1",
        "1GGG1GG1",
        "11111111",
    ),
    "hardest": (
        "111111111111",
        "1RGGG1GGGGG1",
        "1G11G1G1G1G1",
        "1GGGGGG1GGG1",
        "1G1111G111G1",
        "1GG1G1GGGGG1",
        "11G1G1G1G111",
        "1GG1GGG1GGG1",
        "111111111111",
    ),
}


@dataclass(frozen=True)
class Maze:
    """One layout at one cell size."""

    layout: str
    cell_size: float

    @property
    def grid(self) -> tuple[str, ...]:
        return LAYOUTS[self.layout]

    def cells(self, kinds: str) -> np.ndarray:
        """(n, 2) integer (i, j) of the cells whose character is in `kinds`."""
        return np.array(
            [(i, j) for i, row in enumerate(self.grid) for j, c in enumerate(row) if c in kinds],
            dtype=np.int64,
        ).reshape(-1, 2)

    @property
    def start_xy(self) -> np.ndarray:
        return self.cells("R")[0].astype(np.float32) * self.cell_size

    @property
    def goal_xys(self) -> np.ndarray:
        return self.cells("G").astype(np.float32) * self.cell_size

    @property
    def centre_xy(self) -> np.ndarray:
        rows, cols = len(self.grid), len(self.grid[0])
        return np.array([(rows - 1) / 2, (cols - 1) / 2], np.float32) * self.cell_size

    @property
    def extent(self) -> float:
        """Longest side of the maze in metres."""
        return max(len(self.grid), len(self.grid[0])) * self.cell_size

    def sample_goal(self, key: jax.Array) -> jax.Array:
        """A uniformly drawn goal-cell centre, (2,)."""
        goals = jnp.asarray(self.goal_xys)
        return goals[jax.random.randint(key, (), 0, goals.shape[0])]

    def cell_xy(self, i: int, j: int) -> np.ndarray:
        """World (x, y) of the centre of free cell (row i, column j): a goal to command."""
        if not (0 <= i < len(self.grid) and 0 <= j < len(self.grid[0])) or self.grid[i][j] == "1":
            raise ValueError(f"cell ({i}, {j}) is a wall or outside the maze:\n" + "\n".join(self.grid))
        return np.array([i, j], np.float32) * self.cell_size

    def cells_of(self, xys) -> np.ndarray:
        """Grid cells (..., 2) of an (..., 2) array of world (x, y)."""
        return np.floor(np.asarray(xys, np.float64) / self.cell_size + 0.5).astype(np.int64)

    def cell_of(self, xy) -> tuple[int, int]:
        """Grid cell containing a world (x, y)."""
        i, j = self.cells_of(xy)
        return int(i), int(j)

    def is_wall(self, xy) -> bool:
        i, j = self.cell_of(xy)
        inside = 0 <= i < len(self.grid) and 0 <= j < len(self.grid[0])
        return inside and self.grid[i][j] == "1"

    def in_wall_or_outside(self, xys) -> np.ndarray:
        """For an (..., 2) array of world (x, y): True where the point lies in a wall cell or
        outside the grid, a place no body should ever reach."""
        cells = self.cells_of(xys)
        rows, cols = len(self.grid), len(self.grid[0])
        inside = (cells[..., 0] >= 0) & (cells[..., 0] < rows) & (cells[..., 1] >= 0) & (cells[..., 1] < cols)
        walls = np.array([[c == "1" for c in row] for row in self.grid])
        in_wall = walls[np.clip(cells[..., 0], 0, rows - 1), np.clip(cells[..., 1], 0, cols - 1)]
        return ~inside | in_wall

    def wall_boxes(self) -> list[tuple[int, int, int, int]]:
        """Wall cells merged into rectangles (i0, j0, i1, j1), inclusive, covering exactly
        the wall cells: first runs along each row, then identical runs of consecutive rows."""
        runs_by_row = []
        for row in self.grid:
            runs, j = [], 0
            while j < len(row):
                if row[j] == "1":
                    j0 = j
                    while j + 1 < len(row) and row[j + 1] == "1":
                        j += 1
                    runs.append((j0, j))
                j += 1
            runs_by_row.append(runs)
        boxes, open_boxes = [], {}  # (j0, j1) -> i0 of a rectangle still growing downwards
        for i, runs in enumerate(runs_by_row + [[]]):
            for run in list(open_boxes):
                if run not in runs:
                    boxes.append((open_boxes.pop(run), run[0], i - 1, run[1]))
            for run in runs:
                open_boxes.setdefault(run, i)
        return sorted(boxes)

    def walls_xml(self, rgba: str = "0.7 0.5 0.3 1") -> str:
        """MJCF `<geom>` elements for the walls: static boxes in the world body that collide
        with any geom whose contype has bit 1 or bit 2 set. Bodies use bit 2 for the parts that
        must hit walls but not the floor (the floor answers bit 1 only): the ant's torso, the
        humanoid's trunk."""
        s = self.cell_size
        geoms = []
        for n, (i0, j0, i1, j1) in enumerate(self.wall_boxes()):
            cx, cy = (i0 + i1) / 2 * s, (j0 + j1) / 2 * s
            hx, hy = (i1 - i0 + 1) * s / 2, (j1 - j0 + 1) * s / 2
            geoms.append(
                f'<geom name="wall_{n}" type="box" pos="{cx:g} {cy:g} {s / 4:g}" '
                f'size="{hx:g} {hy:g} {s / 4:g}" contype="0" conaffinity="3" rgba="{rgba}"/>'
            )
        return "\n".join(geoms)

    def camera(self) -> dict:
        """A top-down view of the whole maze for `render`."""
        x, y = self.centre_xy
        return dict(lookat=(float(x), float(y), 0.0), distance=1.3 * self.extent, azimuth=90.0, elevation=-89.0)
