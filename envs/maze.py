"""Maze layouts and wall generation, shared by every body that runs in a maze (point, ant, ...).

A layout is a grid of characters: `1` wall, `0` free, `R` the start cell, `G` a goal cell.
Row index i is world x, column j is world y, the centre of cell (i, j) is (i * s, j * s) for a
cell size s, and each wall cell is a box of half-size (s/2, s/2, s/4) centred at height s/4.
Runs of wall cells are merged into fewer, larger boxes (the same occupied volume) because the
physics pipelines test every wall box against every colliding body geom on every step.

Each training episode starts at the centre of the R cell (or, with `maze_start="anywhere"`, in a
uniformly drawn free cell) and draws its goal uniformly among the centres of the G cells.

Each layout also has five named evaluation tasks (`TASKS`): a start cell and a goal cell each.
An evaluation episode of a task starts at its start cell's centre and aims at its goal cell's
centre, each moved by noise uniform in +- cell/4 per axis (OGBench's convention: `Maze.near`).
The `big`, `hardest` and `giant` layouts and their tasks are OGBench's `medium`, `large` and
`giant` (ogbench 1.2.2, `locomaze/maze.py`: the maze maps and `set_tasks`), cell for cell: OGBench
indexes a cell (i, j) by (row = world y, column = world x) where we put row i on world x, so our
mazes are OGBench's mirrored across the diagonal, with the same (i, j) pairs, paths and
difficulty (`tests/test_mazes.py` compares them with the installed `ogbench` package).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from envs.base import Task

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
    # OGBench's giant maze (its own; JaxGCRL has none): start at (1, 1), OGBench's task1 start.
    "giant": (
        "1111111111111111",
        "1R1GGGGGG11GGGG1",
        "1G1G11G1G1GG11G1",
        "1GGG1GG1GGG1GGG1",
        "1G111G111111G1G1",
        "1GGG1GGG1GGGG1G1",
        "111G1G1GG1G1G111",
        "1GGG1GG1GGG1GGG1",
        "1G1G1G111111G1G1",
        "1G111GGG1GGG11G1",
        "1GGGGG1GGG1GGGG1",
        "1111111111111111",
    ),
}

# Five evaluation tasks per layout, ((start cell), (goal cell)) as (row i, column j), named
# task1 ... task5 in this order. big, hardest and giant: OGBench's medium, large and giant tasks
# (ogbench 1.2.2, locomaze/maze.py, `set_tasks`), in its order. u (ours; OGBench has no U maze):
# the free cells form one corridor of 7 cells, and the tasks span its lengths: the whole U both
# ways (6 cells apart), half of it (3), and around one corner (2).
TASKS = {
    "u": (
        ((1, 1), (3, 1)),  # the whole U, from the training start
        ((3, 1), (1, 1)),  # the whole U, back to the training start
        ((1, 1), (2, 3)),  # half the U: along the top and round the first corner
        ((2, 3), (3, 1)),  # the other half
        ((1, 3), (3, 3)),  # around the far corner
    ),
    "big": (  # OGBench medium
        ((1, 1), (6, 6)),
        ((6, 1), (1, 6)),
        ((5, 3), (4, 2)),
        ((6, 5), (6, 1)),
        ((2, 6), (1, 1)),
    ),
    "hardest": (  # OGBench large
        ((1, 1), (7, 10)),
        ((5, 4), (7, 1)),
        ((7, 4), (1, 10)),
        ((3, 8), (5, 4)),
        ((1, 1), (5, 4)),
    ),
    "giant": (  # OGBench giant
        ((1, 1), (10, 14)),
        ((1, 14), (10, 1)),
        ((8, 14), (1, 1)),
        ((8, 3), (5, 12)),
        ((5, 9), (3, 8)),
    ),
}


MAZE_STARTS = ("fixed", "anywhere")


@dataclass(frozen=True)
class Maze:
    """One layout at one cell size, and where its training episodes start (`start`): "fixed",
    the R cell's centre (JaxGCRL's); "anywhere", a free cell drawn uniformly, within +- cell/4
    of its centre (the spread of OGBench's datasets, whose trajectories start all over the maze)."""

    layout: str
    cell_size: float
    start: str = "fixed"

    def __post_init__(self):
        if self.start not in MAZE_STARTS:
            raise ValueError(f"maze_start must be one of {', '.join(MAZE_STARTS)}, got '{self.start}'")

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

    def tasks(self, goal_z: tuple[float, ...] = ()) -> tuple[Task, ...]:
        """The layout's evaluation tasks (`TASKS`) as `Task`s: start = the start cell's centre
        (x, y), goal = the goal cell's centre (x, y) followed by `goal_z` (a body whose goal also
        has a height), before the noise of `near`."""
        tasks = []
        for k, (start, goal) in enumerate(TASKS[self.layout]):
            cells = self.path_length(start, goal)
            why = f"cell {start} to cell {goal}: {cells} cells along the shortest path"
            goal_xy = tuple(float(v) for v in self.cell_xy(*goal))
            start_xy = tuple(float(v) for v in self.cell_xy(*start))
            tasks.append(Task(f"task{k + 1}", goal_xy + tuple(goal_z), start_xy, why))
        return tuple(tasks)

    def path_length(self, a: tuple[int, int], b: tuple[int, int]) -> int:
        """Steps between free cells a and b along the shortest path through free cells
        (moving to one of the 4 neighbours per step); ValueError if b cannot be reached."""
        grid, frontier, seen = self.grid, [tuple(a)], {tuple(a): 0}
        while frontier:
            i, j = frontier.pop(0)
            for cell in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if cell not in seen and grid[cell[0]][cell[1]] != "1":  # the border is all wall
                    seen[cell] = seen[(i, j)] + 1
                    frontier.append(cell)
        if tuple(b) not in seen:
            raise ValueError(f"cell {b} cannot be reached from cell {a}")
        return seen[tuple(b)]

    def near(self, key: jax.Array, xy: jax.Array) -> jax.Array:
        """`xy` moved by noise uniform in +- cell/4 per axis: where a task's start or goal lands
        (OGBench's noise around a cell centre)."""
        return xy + jax.random.uniform(key, (2,), minval=-0.25, maxval=0.25) * self.cell_size

    def task_ends(self, key: jax.Array, start: jax.Array, goal_xy: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A task episode's start and goal (x, y): each within `near`'s noise of its cell centre."""
        start_key, goal_key = jax.random.split(key)
        return self.near(start_key, start), self.near(goal_key, goal_xy)

    @property
    def centre_xy(self) -> np.ndarray:
        rows, cols = len(self.grid), len(self.grid[0])
        return np.array([(rows - 1) / 2, (cols - 1) / 2], np.float32) * self.cell_size

    @property
    def extent(self) -> float:
        """Longest side of the maze in metres."""
        return max(len(self.grid), len(self.grid[0])) * self.cell_size

    def training_start(self, key: jax.Array) -> jax.Array:
        """Where a training episode starts, (2,): the R cell's centre, or with start="anywhere" a
        uniformly drawn free cell (R or G) moved by `near`'s noise."""
        if self.start == "fixed":
            return jnp.asarray(self.start_xy)
        cell_key, noise_key = jax.random.split(key)
        free = jnp.asarray(self.cells("RG").astype(np.float32) * self.cell_size)
        return self.near(noise_key, free[jax.random.randint(cell_key, (), 0, free.shape[0])])

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
