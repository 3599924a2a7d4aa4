# dapx bench: rerun with `gnuplot bench.gp` in this folder
$m0 << EOD
16384 142.190082 438.179688
EOD
$m1 << EOD
16384 143.209242 351.382812
EOD
$m2 << EOD
16384 244.816248 443.003906
EOD
$m3 << EOD
16384 114.780141 342.433594
EOD
$m4 << EOD
16384 15.049820 286.589844
EOD
$m5 << EOD
16384 17.550591 287.554688
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
