# dapx bench: rerun with `gnuplot bench.gp` in this folder
$m0 << EOD
256 3.357807 240.468750
1024 4.894088 248.058594
4096 16.088496 270.007812
8192 44.799833 354.878906
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
