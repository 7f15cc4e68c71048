import './base.css';
import './switcher.css';
