set terminal svg size 960,420 dynamic font 'sans,11'
set output 'bench/results/serve-4096-xeon-2026-12-07/serve.svg'
set multiplot layout 1,2 title 'dapx serve: 4096-token prompts, 64 new tokens, q05'
set key top left
set grid
set xlabel 'concurrent clients'
set ylabel 'generated tokens/s (all clients)'
set title 'throughput'
plot '-' using 1:2 with linespoints title 'full', '-' using 1:2 with linespoints title 'streaming', '-' using 1:2 with linespoints title 'h2o', '-' using 1:2 with linespoints title 'snapkv', '-' using 1:2 with linespoints title 'pyramidkv', '-' using 1:2 with linespoints title 'adakv', '-' using 1:2 with linespoints title 'tova', '-' using 1:2 with linespoints title 'knorm', '-' using 1:2 with linespoints title 'speckv', '-' using 1:2 with linespoints title 'laq', '-' using 1:2 with linespoints title 'specpc', '-' using 1:2 with linespoints title 'speckv-pc', '-' using 1:2 with linespoints title 'target-pc', '-' using 1:2 with linespoints title 'ppl-pc', '-' using 1:2 with linespoints title 'random-pc'
8 5.5645
e
8 5.51526
e
8 3.84841
e
8 5.85166
e
8 5.58549
e
8 5.46344
e
8 5.77648
e
8 5.69526
e
8 5.61101
e
8 2.40959
e
8 46.0834
e
8 20.4445
e
8 5.48276
e
8 14.584
e
8 50.4181
e
set ylabel 'seconds'
set title 'time to first token (median)'
plot '-' using 1:2 with linespoints title 'full', '-' using 1:2 with linespoints title 'streaming', '-' using 1:2 with linespoints title 'h2o', '-' using 1:2 with linespoints title 'snapkv', '-' using 1:2 with linespoints title 'pyramidkv', '-' using 1:2 with linespoints title 'adakv', '-' using 1:2 with linespoints title 'tova', '-' using 1:2 with linespoints title 'knorm', '-' using 1:2 with linespoints title 'speckv', '-' using 1:2 with linespoints title 'laq', '-' using 1:2 with linespoints title 'specpc', '-' using 1:2 with linespoints title 'speckv-pc', '-' using 1:2 with linespoints title 'target-pc', '-' using 1:2 with linespoints title 'ppl-pc', '-' using 1:2 with linespoints title 'random-pc'
8 47.1106
e
8 48.8699
e
8 73.2876
e
8 44.5743
e
8 47.8437
e
8 49.9397
e
8 46.5211
e
8 47.5504
e
8 47.3784
e
8 116.614
e
8 2.21533
e
8 12.6499
e
8 49.5749
e
8 16.1812
e
8 1.86197
e
unset multiplot
