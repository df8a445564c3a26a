"""Training data: `stream` (the seeded, sharded, resumable `TrainStream` over any `ExampleSource`),
`arc` (ARC tasks -> augmented examples with computed puzzle ids, leak guard, presets, build CLI),
and the Sudoku/Maze sources beside them."""
