set terminal svg size 960,420 dynamic font 'sans,11'
set output 'bench/results/serve-4096-xeon-2026-12-07/serve.svg'
set multiplot layout 1,2 title 'dapx serve: 4096-token prompts, 64 new tokens, q05, 8 clients'
set grid
set style data histograms
set style fill solid 0.6 border -1
set boxwidth 0.8
set xtics rotate by -45 scale 0
unset key
set yrange [0:*]
set ylabel 'generated tokens/s (all clients)'
set title 'throughput'
plot '-' using 2:xtic(1)
full 5.5645
streaming 5.51526
h2o 3.84841
snapkv 5.85166
pyramidkv 5.58549
adakv 5.46344
tova 5.77648
knorm 5.69526
speckv 5.61101
laq 2.40959
specpc 46.0834
speckv-pc 20.4445
target-pc 5.48276
ppl-pc 14.584
random-pc 50.4181
e
set ylabel 'seconds'
set title 'time to first token (median)'
plot '-' using 2:xtic(1)
full 47.1106
streaming 48.8699
h2o 73.2876
snapkv 44.5743
pyramidkv 47.8437
adakv 49.9397
tova 46.5211
knorm 47.5504
speckv 47.3784
laq 116.614
specpc 2.21533
speckv-pc 12.6499
target-pc 49.5749
ppl-pc 16.1812
random-pc 1.86197
e
unset multiplot
