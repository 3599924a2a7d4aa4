# dapx bench: rerun with `gnuplot bench.gp` in this folder
$m0 << EOD
256 1.670717 438.389648
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
plot $m0 using 1:2 with linespoints lw 2 title 'full'
set title 'working memory: peak RSS - weights (median)'
set ylabel 'MiB'
plot $m0 using 1:3 with linespoints lw 2 title 'full'
unset multiplot
