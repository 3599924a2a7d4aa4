# dapx bench: rerun with `gnuplot bench.gp` in this folder
$m0 << EOD
4096 41.547845 335.679688
8192 95.183303 386.527344
16384 222.459188 485.628906
EOD
$m1 << EOD
4096 40.983461 336.121094
8192 91.899824 343.371094
16384 217.104518 431.359375
EOD
$m2 << EOD
4096 83.522931 382.722656
8192 171.523366 476.390625
16384 384.179833 644.093750
EOD
$m3 << EOD
4096 41.520340 391.527344
8192 81.898671 365.847656
16384 153.164118 493.269531
EOD
$m4 << EOD
4096 20.614579 340.781250
8192 22.712939 335.539062
16384 23.321637 334.281250
EOD
$m5 << EOD
4096 27.314523 265.339844
8192 23.588078 261.804688
16384 24.681623 260.230469
EOD
set terminal svg size 1200,500 dynamic noenhanced font 'sans,12'
set output 'bench.svg'
set multiplot layout 1,2 title 'dapx bench: /tmp/tr/q05'
set logscale x 2
set xlabel 'prompt tokens'
set grid
set key below
set title 'end-to-end latency (median)'
set ylabel 'seconds'
plot $m0 using 1:2 with linespoints lw 2 title 'full', $m1 using 1:2 with linespoints lw 2 title 'snapkv', $m2 using 1:2 with linespoints lw 2 title 'laq', $m3 using 1:2 with linespoints lw 2 title 'speckv', $m4 using 1:2 with linespoints lw 2 title 'specpc', $m5 using 1:2 with linespoints lw 2 title 'speckv-pc'
set title 'working memory: peak RSS - weights (median)'
set ylabel 'MiB'
plot $m0 using 1:3 with linespoints lw 2 title 'full', $m1 using 1:3 with linespoints lw 2 title 'snapkv', $m2 using 1:3 with linespoints lw 2 title 'laq', $m3 using 1:3 with linespoints lw 2 title 'speckv', $m4 using 1:3 with linespoints lw 2 title 'specpc', $m5 using 1:3 with linespoints lw 2 title 'speckv-pc'
unset multiplot
