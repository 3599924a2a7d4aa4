set terminal svg size 960,420 dynamic font 'sans,11'
set output '/tmp/ss-after-29686/serve.svg'
set multiplot layout 1,2 title 'dapx serve: 32-token prompts, 64 new tokens, q05'
set grid
set key top left
set xlabel 'concurrent clients'
set ylabel 'generated tokens/s (all clients)'
set title 'throughput'
plot '-' using 1:2 with linespoints title 'full'
1 22.4494
2 38.5041
4 64.6571
8 87.1847
e
set ylabel 'seconds'
set title 'time to first token (median)'
plot '-' using 1:2 with linespoints title 'full'
1 0.113941
2 0.178418
4 0.294312
8 0.512772
e
unset multiplot
