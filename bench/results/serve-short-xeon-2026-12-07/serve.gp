set terminal svg size 960,420 dynamic font 'sans,11'
set output 'bench/results/serve-short-xeon-2026-12-07/serve.svg'
set multiplot layout 1,2 title 'dapx serve: 32-token prompts, 64 new tokens, q05'
set grid
set key top left
set xlabel 'concurrent clients'
set ylabel 'generated tokens/s (all clients)'
set title 'throughput'
plot '-' using 1:2 with linespoints title 'full'
1 17.8888
2 30.4282
4 49.1311
8 65.9424
e
set ylabel 'seconds'
set title 'time to first token (median)'
plot '-' using 1:2 with linespoints title 'full'
1 0.117002
2 0.189298
4 0.31827
8 0.458346
e
unset multiplot
