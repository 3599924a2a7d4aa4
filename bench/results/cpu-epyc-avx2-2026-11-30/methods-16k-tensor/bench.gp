# dapx bench: rerun with `gnuplot bench.gp` in this folder
$m0 << EOD
16384 205.051006 478.175781
EOD
$m1 << EOD
16384 194.805512 424.789062
EOD
$m2 << EOD
16384 347.667818 669.296875
EOD
$m3 << EOD
16384 153.513169 416.855469
EOD
$m4 << EOD
16384 20.116441 327.550781
EOD
$m5 << EOD
16384 21.587678 318.289062
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
