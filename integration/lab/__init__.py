"""The rules lab: replay the stored history under any rules file (``leadloop rules compare``), learn
point values from outcomes (``leadloop rules suggest``) and explain one lead (``leadloop explain``)."""
